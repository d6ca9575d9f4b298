"""The sharing structures of the supplementary's Tables 1-3 as one parameterised decoder.

Every variant is the same two-stream decoder of four up-convs; a ``DecoderPlan`` says which
up-convs are shared (one module serving both tasks) and which sharing unit sits after each
up-conv:

===========  ==========================  ===============================================
sharing      shared up-convs             units after up-conv 1..3
===========  ==========================  ===============================================
lateral      none                        both directions learned (the proposed model)
separate     none                        none (independent decoders, shared encoder)
cascaded     none                        none; the first branch's prediction feeds the
                                         second branch's head (SynergyNet, ``cascade_to_*``)
branch_out   first ``shared_layers``     none
merge_in     last ``shared_layers``      none; the streams are averaged into the first
                                         shared up-conv
===========  ==========================  ===============================================

"Fine-tuned" in Table 1 is a training schedule (train one task, then fine-tune on the other):
the network is ``separate`` and the trainer runs the schedule (``train.mode: sequential``).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from synergy_ros.network.config import NUM_UPCONVS, NetworkConfig
from synergy_ros.network.decoder import UPCONV_BLOCKS, SharingUnit


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    """Which directions a sharing unit mixes, and the initial cross weight."""

    to_depth: bool
    to_semantic: bool
    cross_init: float


@dataclasses.dataclass(frozen=True)
class DecoderPlan:
    """``shared[k]``: up-conv k serves both tasks; ``units[k]``: the unit after up-conv k."""

    shared: tuple[bool, ...]
    units: tuple[UnitSpec, ...]


def decoder_plan(config: NetworkConfig) -> DecoderPlan:
    """Translate ``config.sharing`` (+ ``shared_layers``, ``cascade_first``) into a plan."""
    none = UnitSpec(False, False, 0.0)
    shared = [False] * NUM_UPCONVS
    units = [none] * (NUM_UPCONVS - 1)
    if config.sharing == "lateral":
        units = [UnitSpec(True, True, config.sharing_init)] * (NUM_UPCONVS - 1)
    elif config.sharing == "branch_out":
        shared = [k < config.shared_layers for k in range(NUM_UPCONVS)]
    elif config.sharing == "merge_in":
        shared = [k >= NUM_UPCONVS - config.shared_layers for k in range(NUM_UPCONVS)]
    return DecoderPlan(tuple(shared), tuple(units))


class DecoderStage(nn.Module):
    """One up-conv level: either ``shared`` or a ``depth`` + ``semantic`` pair."""

    def __init__(self, block: type, in_channels: int, out_channels: int, shared: bool) -> None:
        super().__init__()
        self.is_shared = shared
        if shared:
            self.shared = block(in_channels, out_channels)
        else:
            self.depth = block(in_channels, out_channels)
            self.semantic = block(in_channels, out_channels)

    def forward(self, depth: torch.Tensor,
                semantic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (B, Cin, H, W) streams -> two (B, Cout, 2H, 2W) streams (the same if shared)."""
        if self.is_shared:
            merged = depth if depth is semantic else 0.5 * (depth + semantic)
            out = self.shared(merged)
            return out, out
        return self.depth(depth), self.semantic(semantic)


class SynergyDecoder(nn.Module):
    """conv2 features (B, W, H/32, W/32) -> per-branch up-conv outputs at 1/16 .. 1/2.

    Channels: W -> W/2 -> W/4 -> W/8 -> W/16 (1024 -> 512 -> 256 -> 128 -> 64 in the paper).
    """

    def __init__(self, config: NetworkConfig, width: int) -> None:
        super().__init__()
        self.plan = decoder_plan(config)
        block = UPCONV_BLOCKS[config.upconv]
        self.channels = [width // 2 ** (k + 1) for k in range(NUM_UPCONVS)]
        inputs = [width] + self.channels[:-1]
        self.stages = nn.ModuleList(
            DecoderStage(block, cin, cout, shared)
            for cin, cout, shared in zip(inputs, self.channels, self.plan.shared))
        self.units = nn.ModuleList(
            SharingUnit(channels, config.sharing_granularity, spec.to_depth, spec.to_semantic,
                        spec.cross_init)
            for channels, spec in zip(self.channels, self.plan.units))

    def forward(self, features: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Return ([upconv_dep1..4], [upconv_sem1..4]), raw up-conv outputs before the units."""
        depth = semantic = features
        depth_outputs, semantic_outputs = [], []
        for index, stage in enumerate(self.stages):
            if index > 0:
                depth, semantic = self.units[index - 1](depth, semantic)
            depth, semantic = stage(depth, semantic)
            depth_outputs.append(depth)
            semantic_outputs.append(semantic)
        return depth_outputs, semantic_outputs
