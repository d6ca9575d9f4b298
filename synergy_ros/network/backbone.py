"""ResNet-18/34/50/101 encoders with torchvision-compatible ``state_dict`` keys.

torchvision is not installable next to the CPU torch used here, so the encoder is written in
the project. Module names match ``torchvision.models.resnet`` exactly (``conv1``, ``bn1``,
``layer1`` .. ``layer4``, blocks with ``conv1/bn1/conv2/bn2[/conv3/bn3]`` and
``downsample.0`` / ``downsample.1``), so a torchvision ImageNet checkpoint loads with a strict
key check. The classification layers (``avgpool``, ``fc``) are removed, as in the paper.

Strides: conv1 + maxpool reach 1/4, layer2 1/8, layer3 1/16, layer4 1/32 of the input size;
the stride of a Bottleneck sits on its 3x3 conv (torchvision "ResNet v1.5").
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from synergy_ros.core.errors import SynergyError


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, C, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, with a shortcut (ResNet-50/101)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, 4C, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                         nn.BatchNorm2d(out_channels))


# name -> (block type, blocks per stage); the torchvision / He et al. configurations.
RESNET_SPECS: dict[str, tuple[type, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


class ResNetEncoder(nn.Module):
    """A ResNet without avgpool/fc: (B, 3, H, W) -> (B, out_channels, H/32, W/32).

    ``out_channels`` is 512 for ResNet-18/34 and 2048 for ResNet-50/101.
    """

    def __init__(self, name: str = "resnet50") -> None:
        super().__init__()
        if name not in RESNET_SPECS:
            raise SynergyError(f"unknown encoder {name!r}; choose one of "
                               f"{', '.join(RESNET_SPECS)}")
        block, counts = RESNET_SPECS[name]
        self.name = name
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_channels = 64
        for index, (channels, count) in enumerate(zip((64, 128, 256, 512), counts)):
            stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(count):
                blocks.append(block(in_channels, channels, stride if block_index == 0 else 1))
                in_channels = channels * block.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.out_channels = in_channels
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's init with ``zero_init_residual=True``: each block starts as identity.

        Without it an untrained deep ResNet in eval mode (running stats 0/1) blows activations
        up to ~1e5 at 1/32 (measured on ResNet-101), saturating the depth sigmoid. ImageNet
        weights overwrite all of this.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, Bottleneck):
                nn.init.zeros_(module.bn3.weight)
            elif isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised image -> (B, out_channels, H/32, W/32) features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


# Keys of a torchvision classification checkpoint that the encoder drops on purpose.
CLASSIFIER_PREFIXES = ("fc.",)


def check_encoder_state_dict(encoder: ResNetEncoder,
                             state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check a torchvision ResNet state_dict against ``encoder`` and return the keys to load.

    The classifier (``fc.*``) is dropped; ``bn*.num_batches_tracked`` may be missing (old
    torchvision checkpoints predate it) and is then filled with 0. Any other missing key,
    unexpected key or shape mismatch raises SynergyError listing them all.
    """
    expected = encoder.state_dict()
    provided = {k: v for k, v in state_dict.items()
                if not k.startswith(CLASSIFIER_PREFIXES)}
    missing = [k for k in expected if k not in provided
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in provided if k not in expected]
    shapes = [f"{k}: file {tuple(provided[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items()
              if k in provided and tuple(provided[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_short_list(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_short_list(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {_short_list(shapes)}")
        raise SynergyError(
            f"encoder weights do not match {encoder.name}: " + "; ".join(parts)
            + f". Pass a torchvision {encoder.name} ImageNet state_dict (e.g. the file "
            f"torchvision.models.{encoder.name}(weights=...).state_dict() was saved to), "
            f"or choose the encoder that matches the file.")
    for key, value in expected.items():
        if key not in provided:
            provided[key] = torch.zeros_like(value)
    return provided


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict file (plain dict, or wrapped in ``{"state_dict": ...}``).

    Loads with ``weights_only=True`` (no pickled code runs) onto the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise SynergyError(f"encoder weights file {path} does not exist; pass the path of a "
                           f"torchvision ResNet ImageNet checkpoint (.pth)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise SynergyError(f"cannot read encoder weights {path}: {exc}. Pass a torch.save'd "
                           f"state_dict (.pth)") from exc
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor)
                                                for v in data.values()):
        raise SynergyError(f"{path} is not a state_dict (a dict of tensors); pass a "
                           f"torchvision ResNet checkpoint")
    return dict(data)


def _short_list(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
