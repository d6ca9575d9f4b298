"""``SynergyNet``: shared ResNet encoder, depth + semantic decoders with sharing, up-skips.

Data flow for a (B, 3, H, W) input (H, W padded up to multiples of 32, cropped back)::

    encoder (ResNet, 1/32) -> conv2 (1x1 conv+BN+ReLU, C_enc -> W)
      -> SynergyDecoder: 4 up-convs per branch, W/2 .. W/16 channels at 1/16 .. 1/2,
         sharing units between them (variants.py)
      -> UpSkip per branch (64 channels at 1/2 for ResNet-50); ``cascaded``: the first
         branch's prediction (depth, or class probabilities) enters the second's up-skip sum
      -> depth_head 3x3 conv -> 1, semantic_head 3x3 conv -> num_classes (1/2)
      -> bilinear upsample to the input size; depth = min + softplus(x) metres
         (``depth_head: softplus``) or min + (max - min) * sigmoid(x) (``sigmoid``).

Depth parametrisation (``NetworkConfig.depth_head``): the paper's Table 3 ends in
``conv_dep -> out_dep`` with no bounded activation. The default ``softplus`` head is positive
and unbounded: its slope tends to 1 m per unit of x, where the sigmoid's falls from 2.5 m (at
mid range) to ~0.1 m at 99 % of ``max_depth`` and damps exactly the far pixels the
attention-driven loss weights up. Training sees the unclamped depth; ``clamp_depth`` limits it
to (min_depth, max_depth) where predictions leave the network (the deployed graph, metrics).
Its bias starts at softplus^-1 of mid range, so an untrained network predicts ~(min + max) / 2.
The raw output is upsampled before either activation so upsampling cannot leave the range.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from synergy_ros.core.errors import SynergyError
from synergy_ros.network.attention import attention_map
from synergy_ros.network.backbone import ResNetEncoder, check_encoder_state_dict, read_state_dict
from synergy_ros.network.config import PARAMETER_GROUPS, NetworkConfig
from synergy_ros.network.decoder import UpSkip, conv_bn_relu
from synergy_ros.network.variants import SynergyDecoder

PAD_MULTIPLE = 32


class SynergyOutput(NamedTuple):
    """Network outputs.

    depth: (B, 1, H, W) metres > min_depth (sigmoid head: also < max_depth; the softplus
        head is unbounded above until ``SynergyNet.clamp_depth``).
    semantic_logits: (B, num_classes, H, W) unnormalised class scores.
    attention: (B, 1, ceil(H/16), ceil(W/16)) sum of |activations| of the first depth up-conv,
        or None unless ``return_attention`` was requested.
    """

    depth: torch.Tensor
    semantic_logits: torch.Tensor
    attention: Optional[torch.Tensor] = None


class SynergyNet(nn.Module):
    """The synergy network of Jiao et al. (ECCV 2018); build it with ``build_network``."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ResNetEncoder(config.encoder)
        width = config.decoder_width or self.encoder.out_channels // 2
        self.conv2 = conv_bn_relu(self.encoder.out_channels, width, 1)
        self.decoder = SynergyDecoder(config, width)
        skip_channels = self.decoder.channels[-1]
        skip_inputs = [width] + self.decoder.channels[:-1]
        self.depth_skip = UpSkip(skip_inputs, skip_channels)
        self.semantic_skip = UpSkip(skip_inputs, skip_channels)
        self.depth_head = nn.Conv2d(skip_channels, 1, 3, padding=1)
        self.semantic_head = nn.Conv2d(skip_channels, config.num_classes, 3, padding=1)
        if config.sharing == "cascaded":  # the first branch's prediction -> the second branch
            if config.cascade_first == "depth":
                self.cascade_to_semantic = conv_bn_relu(1, skip_channels, 3)
            else:
                self.cascade_to_depth = conv_bn_relu(config.num_classes, skip_channels, 3)
        nn.init.constant_(self.depth_head.bias, _initial_depth_bias(config))
        if config.frozen_bn:
            for module in self.encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.requires_grad_(False)
                    module.bias.requires_grad_(False)
            self.encoder.eval()

    @property
    def num_classes(self) -> int:
        """Number of semantic classes the head predicts."""
        return self.semantic_head.out_channels

    def train(self, mode: bool = True) -> "SynergyNet":
        """Set train/eval mode; with ``frozen_bn`` the encoder's BatchNorm stays in eval."""
        super().train(mode)
        if self.config.frozen_bn:
            for module in self.encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, image: torch.Tensor, return_attention: bool = False) -> SynergyOutput:
        """Predict depth and semantics.

        Args:
            image: (B, 3, H, W) float image normalised with the model's mean/std; any H, W
                (padded by edge replication to multiples of 32 and cropped back).
            return_attention: also return the depth attention map.
        """
        self._check_image(image)
        height, width = int(image.shape[-2]), int(image.shape[-1])
        pad_h = (-height) % PAD_MULTIPLE
        pad_w = (-width) % PAD_MULTIPLE
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.conv2(self.encoder(image))
        depth_outputs, semantic_outputs = self.decoder(features)
        depth_features = self.depth_skip([features] + depth_outputs[:-1], depth_outputs[-1])
        semantic_features = self.semantic_skip([features] + semantic_outputs[:-1],
                                               semantic_outputs[-1])
        if self.config.sharing == "cascaded" and self.config.cascade_first == "depth":
            depth = self.depth_head(depth_features)
            logits = self.semantic_head(semantic_features + self.cascade_to_semantic(depth))
        elif self.config.sharing == "cascaded":
            logits = self.semantic_head(semantic_features)
            depth = self.depth_head(depth_features
                                    + self.cascade_to_depth(torch.softmax(logits, dim=1)))
        else:
            depth = self.depth_head(depth_features)
            logits = self.semantic_head(semantic_features)
        padded_size = (height + pad_h, width + pad_w)
        depth = F.interpolate(depth, size=padded_size, mode="bilinear", align_corners=False)
        logits = F.interpolate(logits, size=padded_size, mode="bilinear", align_corners=False)
        depth = self._depth_activation(depth[..., :height, :width])
        logits = logits[..., :height, :width]
        attention = None
        if return_attention:
            stride = PAD_MULTIPLE // 2
            attention = attention_map(depth_outputs[0])
            attention = attention[..., :-(-height // stride), :-(-width // stride)]
        return SynergyOutput(depth, logits, attention)

    def _depth_activation(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw depth output (B, 1, H, W) -> metres, per ``config.depth_head``."""
        config = self.config
        if config.depth_head == "sigmoid":
            return config.min_depth + (config.max_depth - config.min_depth) * torch.sigmoid(raw)
        return config.min_depth + F.softplus(raw)

    def clamp_depth(self, depth: torch.Tensor) -> torch.Tensor:
        """Limit depth (metres) to [min_depth, max_depth]: predictions leaving the network.

        The deployed graph (``runtime.torch_graph.DeployGraph``, hence ONNX / TensorRT) and
        the trainer's validation apply it; training losses see the unclamped softplus depth.
        """
        return depth.clamp(self.config.min_depth, self.config.max_depth)

    def _check_image(self, image: torch.Tensor) -> None:
        if not isinstance(image, torch.Tensor):
            raise SynergyError(f"SynergyNet expects a torch.Tensor image, got "
                               f"{type(image).__name__}")
        if image.dim() != 4 or image.shape[1] != 3:
            raise SynergyError(f"SynergyNet expects a (B, 3, H, W) image, got shape "
                               f"{tuple(image.shape)}; add a batch dimension with "
                               f"unsqueeze(0) / convert grey or RGBA images to RGB")
        if not image.dtype.is_floating_point:
            raise SynergyError(f"SynergyNet expects a float image normalised with the model's "
                               f"mean/std, got dtype {image.dtype}; convert with "
                               f"(image.float() / 255 - mean) / std")
        param_dtype = self.depth_head.weight.dtype
        if image.dtype != param_dtype:
            raise SynergyError(f"image dtype {image.dtype} does not match the model's "
                               f"{param_dtype}; convert with image.to({param_dtype})")
        if image.shape[-2] < 1 or image.shape[-1] < 1:
            raise SynergyError(f"empty image of shape {tuple(image.shape)}")

    def replace_semantic_head(self, num_classes: int) -> None:
        """Swap the final semantic layer for ``num_classes`` (fresh weights), keeping the rest.

        Used to fine-tune e.g. a 40-class NYU model on 21 Cityscapes classes. Not for a
        semantics-first cascade, whose depth branch reads the class probabilities.
        """
        if self.config.sharing == "cascaded" and self.config.cascade_first == "semantic":
            raise SynergyError("a semantics-first cascaded network feeds its class "
                               "probabilities into the depth branch, so its class count "
                               "cannot change; train it for the new classes from scratch")
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        old = self.semantic_head
        self.semantic_head = nn.Conv2d(old.in_channels, num_classes, 3, padding=1).to(
            device=old.weight.device, dtype=old.weight.dtype)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Disjoint parameter groups covering all parameters, for per-group learning rates.

        ``encoder``: ResNet + conv2; ``depth`` / ``semantic``: each branch's own up-convs,
        up-skip and (depth) head; ``sharing``: shared up-convs (merge_in / branch_out);
        ``depth_sharing``: the sharing units' phi_D, phi_S (they form the depth stream, Table
        3's depth branch); ``semantic_sharing``: their gamma_S, gamma_D; ``semantic_head``:
        the final semantic layer. Weakly supervised training freezes ``semantic``,
        ``semantic_sharing`` and ``semantic_head`` on depth-only batches and ``depth``,
        ``depth_sharing`` on semantics-only ones.
        """
        groups: dict[str, list[nn.Parameter]] = {name: [] for name in PARAMETER_GROUPS}
        for name, parameter in self.named_parameters():
            groups[_group_of(name)].append(parameter)
        return groups


def _initial_depth_bias(config: NetworkConfig) -> float:
    """Depth-head bias that puts an untrained network's depth at mid range (metres)."""
    if config.depth_head == "sigmoid":
        return 0.0  # sigmoid(0) = 1/2: min + span / 2
    mid = 0.5 * (config.max_depth - config.min_depth)
    return mid + math.log(-math.expm1(-mid))  # softplus^-1(mid) = log(exp(mid) - 1), stable


def _group_of(name: str) -> str:
    if name.startswith(("encoder.", "conv2.")):
        return "encoder"
    if name.startswith("semantic_head."):
        return "semantic_head"
    if name.startswith("decoder.units."):
        return "depth_sharing" if name.rsplit(".", 1)[-1].startswith("phi_") else \
            "semantic_sharing"
    if ".shared." in name:
        return "sharing"
    if name.startswith(("depth_skip.", "depth_head.", "cascade_to_depth.")) or ".depth." in name:
        return "depth"
    if name.startswith(("semantic_skip.", "cascade_to_semantic.")) or ".semantic." in name:
        return "semantic"
    raise AssertionError(f"parameter {name} has no group")  # a new module must be assigned


def build_network(config: NetworkConfig | dict | None = None) -> SynergyNet:
    """Build a SynergyNet from a NetworkConfig or its dict (None: the paper's defaults)."""
    if config is None:
        config = NetworkConfig()
    elif not isinstance(config, NetworkConfig):
        config = NetworkConfig.from_dict(config)
    return SynergyNet(config)


def load_encoder_weights(model: SynergyNet | ResNetEncoder, path: str | Path) -> list[str]:
    """Load a torchvision ResNet ImageNet state_dict file into the encoder (strict keys).

    ``fc.*`` (the classifier the paper removes) is ignored; any other missing or unexpected
    key, or a shape mismatch, raises SynergyError listing them. Returns the loaded keys.
    """
    encoder = model.encoder if isinstance(model, SynergyNet) else model
    if not isinstance(encoder, ResNetEncoder):
        raise SynergyError(f"load_encoder_weights needs a SynergyNet or ResNetEncoder, got "
                           f"{type(model).__name__}")
    state_dict = check_encoder_state_dict(encoder, read_state_dict(path))
    encoder.load_state_dict(state_dict, strict=True)
    return sorted(state_dict)
