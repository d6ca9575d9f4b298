"""``NetworkConfig``: every choice that shapes a synergy network, as a JSON-able dataclass."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from synergy_ros.core.errors import SynergyError

ENCODERS = ("resnet18", "resnet34", "resnet50", "resnet101")
SHARING_MODES = ("lateral", "separate", "cascaded", "merge_in", "branch_out")
GRANULARITIES = ("scalar", "channel")
UPCONV_MODES = ("bilinear", "upproj")
CASCADE_ORDERS = ("semantic", "depth")
DEPTH_HEADS = ("softplus", "sigmoid")
NUM_UPCONVS = 4

#: Parameter groups of the network (optimizer groups, freezing); see SynergyNet.parameter_groups.
#: ``depth_sharing`` holds the lateral weights phi that form the depth stream and
#: ``semantic_sharing`` the gamma of the semantic stream (Table 3 puts them in those branches);
#: ``sharing`` the up-convs both tasks share (merge_in / branch_out).
PARAMETER_GROUPS = ("encoder", "depth", "semantic", "sharing", "depth_sharing",
                    "semantic_sharing", "semantic_head")


@dataclasses.dataclass
class NetworkConfig:
    """Configuration of a ``SynergyNet``.

    Attributes:
        encoder: ResNet depth of the shared encoder (paper: resnet50).
        num_classes: semantic classes (40 for NYU-40, 19/21 for Cityscapes).
        sharing: information sharing between the decoders (Tables 1-3 of the supplementary):
            ``lateral`` (proposed: learned sharing units after every up-conv),
            ``separate`` (fine-tuned baseline: two independent decoders),
            ``cascaded`` (the first branch's prediction feeds the second branch),
            ``merge_in`` (separate up-convs, then the last ``shared_layers`` shared),
            ``branch_out`` (the first ``shared_layers`` up-convs shared, then two branches).
        sharing_granularity: ``scalar`` (one weight per unit and direction, as the paper's
            Table 3 writes phi/gamma; the default) or ``channel`` (one weight per channel).
        sharing_init: initial cross weight (phi_S, gamma_D) of a lateral unit; the self
            weights (phi_D, gamma_S) start at 0, i.e. the unit starts as x + 0.1 * other.
        shared_layers: number of shared up-convs for merge_in / branch_out (1..4, Table 2's
            S1..S1-4).
        cascade_first: which branch comes first in ``cascaded`` (``semantic``: semantics feed
            depth, the direction the paper's synergy is after; or ``depth``).
        upconv: ``bilinear`` (x2 bilinear upsample + 3x3 conv + BN + ReLU, default) or
            ``upproj`` (Laina et al.'s up-projection with zero-insert unpooling).
        decoder_width: channels of ``conv2`` (the decoder input at 1/32); the up-convs halve
            it four times (1024 -> 512, 256, 128, 64 for ResNet-50/101). None: half the
            encoder output (1024 for ResNet-50/101, 256 for ResNet-18/34). Multiple of 16.
        depth_head: how the raw depth output x becomes metres. ``softplus`` (default):
            ``min_depth + softplus(x)``, unbounded above, 1 m per unit of x far from
            ``min_depth``, so far pixels keep their gradient; predictions are clamped to
            (min_depth, max_depth) only where they leave the network (``clamp_depth``: the
            deployed graph, validation metrics). ``sigmoid`` (the head of model files written
            before this field existed): ``min_depth + (max_depth - min_depth) * sigmoid(x)``,
            bounded, but its slope falls to ~0.1 m per unit at 99 % of ``max_depth``.
        min_depth, max_depth: valid depth range in metres (the sigmoid head's range; the
            softplus head is clamped to it at inference).
        frozen_bn: keep the encoder's BatchNorm in eval mode with frozen affine parameters.
            Meant for fine-tuning from ImageNet weights (small batches); a randomly initialised
            encoder has zero-initialised residual BN scales that would then never train.
    """

    encoder: str = "resnet50"
    num_classes: int = 40
    sharing: str = "lateral"
    sharing_granularity: str = "scalar"
    sharing_init: float = 0.1
    shared_layers: int = 1
    cascade_first: str = "semantic"
    upconv: str = "bilinear"
    decoder_width: int | None = None
    min_depth: float = 1e-3
    max_depth: float = 10.0
    depth_head: str = "softplus"
    frozen_bn: bool = False

    def __post_init__(self) -> None:
        """Check every field; raise SynergyError naming each bad value and its valid range."""
        problems = []
        choices = {"encoder": ENCODERS, "sharing": SHARING_MODES,
                   "sharing_granularity": GRANULARITIES, "upconv": UPCONV_MODES,
                   "cascade_first": CASCADE_ORDERS, "depth_head": DEPTH_HEADS}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                problems.append(f"{name}={getattr(self, name)!r} (choose {', '.join(valid)})")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            problems.append(f"num_classes={self.num_classes!r} (an integer >= 1)")
        if not isinstance(self.shared_layers, int) or not 1 <= self.shared_layers <= NUM_UPCONVS:
            problems.append(f"shared_layers={self.shared_layers!r} (1..{NUM_UPCONVS})")
        if self.decoder_width is not None and (not isinstance(self.decoder_width, int)
                                               or self.decoder_width < 16
                                               or self.decoder_width % 16):
            problems.append(f"decoder_width={self.decoder_width!r} (a multiple of 16, or null)")
        numbers = {name: getattr(self, name) for name in ("min_depth", "max_depth",
                                                          "sharing_init")}
        bad_numbers = [name for name, value in numbers.items()
                       if isinstance(value, bool) or not isinstance(value, (int, float))]
        for name in bad_numbers:
            problems.append(f"{name}={numbers[name]!r} (a number)")
        if not bad_numbers and not 0 < self.min_depth < self.max_depth:
            problems.append(f"min_depth={self.min_depth!r}, max_depth={self.max_depth!r} "
                            f"(need 0 < min_depth < max_depth, metres)")
        if not isinstance(self.frozen_bn, bool):
            problems.append(f"frozen_bn={self.frozen_bn!r} (true or false)")
        if problems:
            raise SynergyError("invalid network config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (stored in model files as ``ModelMeta.network``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NetworkConfig":
        """Build from a dict; missing keys take defaults, unknown keys raise SynergyError."""
        if isinstance(data, NetworkConfig):
            return data
        if not isinstance(data, Mapping):
            raise SynergyError(f"network config must be a mapping, got {type(data).__name__}")
        valid = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise SynergyError(f"unknown network config keys {unknown}; valid keys: "
                               f"{', '.join(valid)}")
        return cls(**dict(data))
