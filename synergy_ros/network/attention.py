"""Spatial attention of a feature tensor (Zagoruyko & Komodakis; supplementary eq. 1)."""
from __future__ import annotations

import torch


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """A(T) = sum_i |T_i| over channels: (B, C, H, W) -> (B, 1, H, W), >= 0, unnormalised."""
    if features.dim() != 4:
        raise ValueError(f"attention_map expects (B, C, H, W), got shape {tuple(features.shape)}")
    return features.abs().sum(dim=1, keepdim=True)
