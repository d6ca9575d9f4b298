"""Rebuild a SynergyNet from a model file and wrap it as the deployed graph.

:class:`DeployGraph` is the exact computation that is exported to ONNX (and from there to
TensorRT) and that the torch backend runs, so every backend computes the same outputs:
image (B, 3, h, w) float32 normalised -> depth (B, 1, h, w) float32 metres clamped to the
model's (min_depth, max_depth) (``SynergyNet.clamp_depth``: the softplus head is unbounded in
training), labels (B, h, w) int32 (argmax over the semantic logits), optionally attention
(B, 1, h', w') float32.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta, load_model_file
from synergy_ros.network import build_network


def build_from_model_file(model_path: str | os.PathLike) -> tuple[torch.nn.Module, ModelMeta]:
    """Load a ``.pt`` model file/checkpoint into a SynergyNet (eval mode, CPU, fp32).

    Raises SynergyError naming the file when its metadata and weights disagree (e.g. a
    checkpoint for a different number of classes or another encoder).
    """

    payload = load_model_file(model_path)
    meta: ModelMeta = payload["meta"]
    source = Path(model_path)
    config_classes = meta.network.get("num_classes")
    if config_classes is not None and int(config_classes) != meta.num_classes:
        raise SynergyError(f"{source}: network config has num_classes={config_classes} but "
                           f"the metadata lists {meta.num_classes} class names; the file is "
                           "inconsistent - re-export it from its training run")
    try:
        net = build_network(meta.network)
    except SynergyError as exc:
        raise SynergyError(f"{source}: {exc}") from exc
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict):
        raise SynergyError(f"{source} has no state_dict; it is not a trained synergy model")
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()][1:4]
        raise SynergyError(f"{source}: weights do not fit its network config "
                           f"({meta.network.get('encoder')}, {meta.num_classes} classes): "
                           f"{' '.join(lines)[:400]}; the checkpoint was saved for another "
                           "network or class set - use the matching model file") from exc
    net.eval()
    return net, meta


class DeployGraph(torch.nn.Module):
    """SynergyNet -> (depth, labels int32[, attention]) with fp32 I/O.

    Args:
        net: a SynergyNet (any dtype; a half network gets its input cast in-graph).
        with_attention: also return the attention map.
    """

    def __init__(self, net: torch.nn.Module, with_attention: bool = False) -> None:
        super().__init__()
        self.net = net
        self.with_attention = bool(with_attention)

    def forward(self, image: torch.Tensor) -> tuple:
        """image (B, 3, h, w) float32 -> depth (B,1,h,w) m, labels (B,h,w) int32[, att]."""
        dtype = next(self.net.parameters()).dtype
        out = self.net(image.to(dtype), return_attention=self.with_attention)
        depth = self.net.clamp_depth(out.depth).float()
        labels = out.semantic_logits.argmax(dim=1).to(torch.int32)
        if self.with_attention:
            if out.attention is None:
                raise SynergyError("this network returns no attention map; run without "
                                   "attention")
            return depth, labels, out.attention.float()
        return depth, labels
