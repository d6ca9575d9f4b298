"""Training configuration: YAML files with ``base:`` includes, ``--set`` overrides, validation.

A training config is a nested dict. :data:`SCHEMA` lists every key with its default, type and
meaning; a YAML file only states what differs from the defaults. Resolution order::

    SCHEMA defaults  <-  base file(s) (``base: other.yaml``, relative to the including file)
                     <-  the file itself  <-  ``--set a.b=value`` overrides (left to right)

Values are coerced to the key's type (PyYAML reads ``1e-3`` as a string, so numbers written
without a dot still become floats). An unknown key, a wrong type or a value outside the allowed
choices raises :class:`~synergy_ros.core.errors.SynergyError` naming the key, where it came from and
the valid keys/values. Sections marked *open* (``model``, ``loss``, dataset specs) hold keys
owned by another module (``NetworkConfig``, ``SynergyLoss``, the dataset builders), which
validate them when the trainer builds those objects, still before any training step.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from synergy_ros.core.errors import SynergyError
from synergy_ros.learning.losses import canonical_loss_weights
from synergy_ros.network.config import PARAMETER_GROUPS


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key: default value, expected type, allowed choices and a one-line meaning.

    ``kind`` is one of ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict`` (open
    mapping validated by its consumer) or ``any``. ``optional`` keys also accept ``null``.
    A ``dict`` key with ``merge`` merges a later layer's mapping into the earlier one (a file
    states only the network fields it changes); without, a later mapping replaces it whole
    (a loss configuration lists all its terms). ``--set section.key=v`` always sets one entry.
    """

    default: Any
    kind: str
    doc: str
    choices: tuple = ()
    optional: bool = False
    merge: bool = True


def _group_lr_keys() -> dict:
    return {name: Key(None, "float", f"learning rate of the '{name}' parameter group "
                                     "(null: optim.lr)", optional=True)
            for name in PARAMETER_GROUPS}


#: Every valid key with its default. Nested dicts are sections.
SCHEMA: dict = {
    "name": Key("synergy", "str", "run name (default output folder runs/<name>)"),
    "seed": Key(0, "int", "seed for weights init, data order and augmentation"),
    "device": Key("auto", "str", "auto (cuda if available), cpu, cuda or cuda:N"),
    "threads": Key(0, "int", "CPU threads torch uses (0: torch's default, all cores); on a "
                             "busy shared CPU 1 can be several times faster than 2"),
    "model": Key({}, "dict", "open: NetworkConfig fields (encoder, num_classes, sharing, "
                             "sharing_granularity, max_depth, ...)"),
    "init": {
        "checkpoint": Key(None, "str", "model file/checkpoint whose weights start the run",
                          optional=True),
        "replace_semantic_head": Key(True, "bool", "if init.checkpoint has another class "
                                                   "count, replace only the final semantic "
                                                   "layer (else: error)"),
        "encoder_weights": Key(None, "str", "torchvision ResNet ImageNet state_dict (.pth) for "
                                            "the encoder", optional=True),
    },
    "data": {
        "labels": Key("synthetic", "str", "label set (synergy_ros.core.labels): synthetic, nyu40, "
                                          "cityscapes19, cityscapes21"),
        "input_size": Key([96, 128], "list", "training/inference size [height, width] pixels"),
        "train": Key([], "list", "training datasets: list of specs {type: ..., ...}; "
                                 "alternating mode cycles through them batch by batch"),
        "val": Key(None, "dict", "validation dataset spec {type: ..., ...} (a later file "
                                 "replaces it whole)", optional=True, merge=False),
        "batch_size": Key(8, "int", "training batch size per process"),
        "val_batch_size": Key(None, "int", "validation batch size (null: data.batch_size)",
                              optional=True),
        "num_workers": Key(2, "int", "DataLoader worker processes per training process"),
        "preflight_samples": Key(2, "int", "samples per dataset checked before training "
                                           "(shapes, label range)"),
    },
    "loss": Key({}, "dict", "open: SynergyLoss weights {term: weight}, replaced whole by a "
                            "later file (terms: l2, depth_attention, depth_gradient, "
                            "cross_entropy, focal; joint_gradient = depth_gradient; {} = "
                            "the paper's full loss)", merge=False),
    "optim": {
        "name": Key("sgd", "str", "optimizer", choices=("sgd", "adam", "adamw")),
        "lr": Key(1e-3, "float", "base learning rate of every parameter group"),
        "group_lr": _group_lr_keys(),
        "momentum": Key(0.9, "float", "SGD momentum"),
        "betas": Key([0.9, 0.999], "list", "Adam/AdamW betas"),
        "weight_decay": Key(1e-4, "float", "weight decay"),
        "grad_clip": Key(0.0, "float", "clip the gradient global L2 norm to this (0: off)"),
    },
    "schedule": {
        "name": Key("poly", "str", "learning-rate schedule over the total step count",
                    choices=("poly", "step", "cosine", "constant")),
        "power": Key(0.9, "float", "poly: lr = base * (1 - step/total) ** power"),
        "step_size": Key(1000, "int", "step: multiply by gamma every step_size steps"),
        "gamma": Key(0.1, "float", "step: decay factor"),
        "min_lr_ratio": Key(0.0, "float", "poly/cosine: floor as a fraction of the base lr"),
        "warmup_steps": Key(0, "int", "linear warm-up steps from 0 to the base lr"),
    },
    "train": {
        "mode": Key("supervised", "str", "supervised: joint depth+semantic loss per batch; "
                                         "alternating: weakly supervised, per-dataset batches "
                                         "with the other branch frozen; sequential: the "
                                         "fine-tuned schedule of Table 1 (train.task_order)",
                    choices=("supervised", "alternating", "sequential")),
        "task_order": Key(["depth", "semantic"], "list", "sequential: train the first task "
                                                         "alone, then fine-tune on the second "
                                                         "from it ([depth, semantic] or "
                                                         "[semantic, depth])"),
        "first_fraction": Key(0.5, "float", "sequential: fraction of the steps spent on the "
                                            "first task; the lr schedule restarts per stage"),
        "epochs": Key(10, "int", "epochs over the training data"),
        "max_steps": Key(None, "int", "stop after this many optimizer steps in total "
                                      "(null: epochs decide)", optional=True),
        "amp": Key(True, "bool", "mixed precision on CUDA (ignored on CPU)"),
        "amp_dtype": Key("float16", "str", "autocast dtype on CUDA",
                         choices=("float16", "bfloat16")),
        "compile": Key(False, "bool", "torch.compile the model"),
        "max_nonfinite": Key(20, "int", "stop after this many non-finite losses in a row"),
        "checkpoint_every": Key(0, "int", "also write last.pt every N steps (0: per epoch)"),
        "progress": Key(True, "bool", "tqdm progress bar"),
        "deterministic": Key(False, "bool", "torch.use_deterministic_algorithms (slower)"),
    },
    "val": {
        "every_epochs": Key(1, "int", "validate every N epochs (0: never)"),
        "best_metric": Key("rmse", "str", "metric choosing best.pt (depth: abs_rel, rmse, "
                                          "delta1, ...; semantic: miou, pixel_acc; loss)"),
        "best_mode": Key("min", "str", "whether lower or higher best_metric is better",
                         choices=("min", "max")),
        "depth_ranges": Key([4.0, 6.0, 8.0, None], "list", "upper bounds (m) of the depth-range "
                                                           "table rows; null = all"),
        "max_batches": Key(None, "int", "validate on at most this many batches",
                           optional=True),
    },
    "log": {
        "tensorboard": Key(False, "bool", "also log to TensorBoard (needs `tensorboard`)"),
    },
    "release": {
        "test": Key(None, "dict", "held-out dataset spec scored by `synergy train --release` "
                                  "(model and constant baselines)", optional=True, merge=False),
        "baseline_samples": Key(256, "int", "samples per training dataset whose mean depth / "
                                            "most frequent class form the constant baselines"),
        "fp16": Key(True, "bool", "store the released weights as float16 (half the size)"),
    },
}


def _is_key(node: Any) -> bool:
    return isinstance(node, Key)


def defaults(schema: dict | None = None) -> dict:
    """Return the default config (a fresh nested dict)."""
    schema = SCHEMA if schema is None else schema
    return {name: (defaults(node) if isinstance(node, dict) else copy.deepcopy(node.default))
            for name, node in schema.items()}


def iter_keys(schema: dict | None = None, prefix: str = "") -> Iterable[tuple[str, Key]]:
    """Yield ``(dotted_key, Key)`` for every key of the schema, in order."""
    schema = SCHEMA if schema is None else schema
    for name, node in schema.items():
        if isinstance(node, dict):
            yield from iter_keys(node, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", node


def describe_keys() -> str:
    """Human-readable list of all keys with defaults and meanings (``synergy train --keys``)."""
    lines = []
    for dotted, key in iter_keys():
        choices = f" [{'|'.join(key.choices)}]" if key.choices else ""
        lines.append(f"{dotted} = {key.default!r}{choices}  # {key.doc}")
    return "\n".join(lines)


def _coerce(dotted: str, key: Key, value: Any, source: str) -> Any:
    """Convert ``value`` to ``key.kind`` or raise a SynergyError naming the key and source."""
    def fail(expected: str) -> SynergyError:
        return SynergyError(f"config key '{dotted}' (from {source}) must be {expected}, "
                            f"got {value!r}; {key.doc}")

    if value is None:
        if key.optional or key.kind == "any":
            return None
        raise fail(f"a {key.kind} (null is not allowed)")
    kind = key.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise fail("true or false")
    if kind == "int":
        if isinstance(value, bool):
            raise fail("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise fail("an integer")
    if kind == "float":
        if isinstance(value, bool):
            raise fail("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise fail("a number")
    if kind == "str":
        if not isinstance(value, str):
            raise fail("a string")
        if key.choices and value not in key.choices:
            raise fail("one of " + ", ".join(key.choices))
        return value
    if kind == "list":
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise fail("a list")
        return value
    if kind == "dict":
        if not isinstance(value, dict):
            raise fail("a mapping")
        return value
    return value


def _merge(base: dict, update: dict, schema: dict, prefix: str, source: str,
           merge_open: bool | None = None) -> dict:
    """Merge ``update`` onto ``base`` following ``schema``; validate each key on the way.

    ``merge_open`` decides whether open ``dict`` keys merge (None: each key's ``merge``).
    """
    if not isinstance(update, dict):
        where = f"section '{prefix[:-1]}'" if prefix else "the top level"
        raise SynergyError(f"{source}: {where} must be a mapping of keys, got {update!r}")
    merged = dict(base)
    for name, value in update.items():
        dotted = f"{prefix}{name}"
        node = schema.get(name) if isinstance(name, str) else None
        if node is None:
            valid = ", ".join(schema)
            section = f"under '{prefix[:-1]}'" if prefix else "at the top level"
            raise SynergyError(f"unknown config key '{dotted}' (from {source}); valid keys "
                               f"{section}: {valid}. Run `synergy train --keys` to list all")
        if isinstance(node, dict):
            merged[name] = _merge(base.get(name, {}), value, node, f"{dotted}.", source,
                                  merge_open)
        elif (node.kind == "dict" and isinstance(value, dict) and isinstance(base.get(name), dict)
              and (node.merge if merge_open is None else merge_open)):
            merged[name] = _deep_merge(base[name], value)  # open section: merge, owner validates
        else:
            merged[name] = _coerce(dotted, node, value, source)
    return merged


def _deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for name, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name] = _deep_merge(out[name], value)
        else:
            out[name] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise SynergyError(f"config file {path} does not exist; pass one of the bundled "
                           "config/train_*.yaml files or your own YAML")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:  # e.g. a checkpoint passed as config
        raise SynergyError(f"config file {path} is not valid YAML: "
                           f"{str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SynergyError(f"config file {path} must hold a mapping of keys at the top level")
    return data


def _file_layers(path: Path, chain: tuple = ()) -> list[tuple[Path, dict]]:
    """Return ``[(file, data without 'base'), ...]`` from the innermost base to ``path``."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise SynergyError(f"config 'base:' includes form a cycle: {cycle}")
    data = _read_yaml(path)
    base = data.pop("base", None)
    layers: list[tuple[Path, dict]] = []
    if base is not None:
        if not isinstance(base, str):
            raise SynergyError(f"{path}: 'base' must be a file name, got {base!r}")
        base_path = Path(base) if os.path.isabs(base) else path.parent / base
        layers = _file_layers(base_path, (*chain, resolved))
    layers.append((path, data))
    return layers


def _parse_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``'a.b=value'`` into ``(['a', 'b'], value)``; the value is parsed as YAML."""
    if "=" not in text:
        raise SynergyError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optim.lr=1e-3")
    dotted, raw = text.split("=", 1)
    parts = [p for p in dotted.strip().split(".")]
    if not dotted.strip() or any(not p for p in parts):
        raise SynergyError(f"--set {text!r}: the key must be dotted names like optim.lr")
    return parts, _parse_scalar(raw)


def _nest(parts: list[str], value: Any, current: Any) -> Any:
    """Build the update for ``parts`` = ``value``; numeric parts index into existing lists."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(current, list):
        try:
            index = int(head)
            item = current[index]
        except (ValueError, IndexError):
            raise SynergyError(f"--set: '{head}' is not a valid index into a list of "
                               f"{len(current)} items") from None
        updated = copy.deepcopy(current)
        replacement = _nest(rest, value, item)
        updated[index] = (_deep_merge(item, replacement)
                          if isinstance(item, dict) and isinstance(replacement, dict)
                          else replacement)
        return updated
    child = current.get(head) if isinstance(current, dict) else None
    return {head: _nest(rest, value, child)}


def apply_overrides(config: dict, overrides: Sequence[str]) -> dict:
    """Apply ``--set`` strings to a resolved config and validate them."""
    for text in overrides:
        parts, value = parse_override(text)
        update = _nest(parts, value, config)
        # --set model.encoder=x changes one entry; --set 'loss={l2: 1}' replaces the mapping
        node: Any = SCHEMA
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        config = _merge(config, update, SCHEMA, "", f"--set {text}",
                        merge_open=not isinstance(node, Key))
    return config


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> dict:
    """Resolve a training config: defaults <- base includes <- file <- ``--set`` overrides.

    Args:
        path: YAML file (``None``: defaults only).
        overrides: ``'dotted.key=value'`` strings, applied in order.

    Returns:
        The fully resolved, validated config (plain dict, JSON/YAML serialisable).
    """
    config = defaults()
    if path is not None:
        for file, data in _file_layers(Path(path)):
            config = _merge(config, data, SCHEMA, "", str(file))
    config = apply_overrides(config, overrides)
    # former loss term names (joint_gradient) are stored under their current names
    config["loss"] = canonical_loss_weights(config["loss"])
    check_config(config)
    return config


def check_config(config: dict) -> None:
    """Cross-key checks the per-key types cannot express; raise SynergyError on a problem."""
    data = config["data"]
    size = data["input_size"]
    if (len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
            or min(size) <= 0):
        raise SynergyError(f"data.input_size must be [height, width] in pixels > 0, got {size}")
    for dotted in ("data.batch_size", "train.epochs", "train.max_nonfinite"):
        section, name = dotted.split(".")
        if config[section][name] < 1:
            raise SynergyError(f"{dotted} must be >= 1, got {config[section][name]}")
    if data["num_workers"] < 0:
        raise SynergyError(f"data.num_workers must be >= 0, got {data['num_workers']}")
    if not isinstance(data["train"], list) or not all(isinstance(s, dict) for s in data["train"]):
        raise SynergyError("data.train must be a list of dataset specs like "
                           "[{type: synthetic, num_frames: 256}]")
    if config["train"]["mode"] == "alternating" and len(data["train"]) < 2:
        raise SynergyError("train.mode 'alternating' needs at least two data.train datasets "
                           "(e.g. a depth-only and a semantics-only one)")
    train = config["train"]
    if train["mode"] == "sequential":
        if sorted(train["task_order"]) != ["depth", "semantic"]:
            raise SynergyError(f"train.task_order must be [depth, semantic] or [semantic, "
                               f"depth], got {train['task_order']}")
        if not 0 < train["first_fraction"] < 1:
            raise SynergyError(f"train.first_fraction must be in (0, 1), got "
                               f"{train['first_fraction']}")
    if config["optim"]["lr"] <= 0:
        raise SynergyError(f"optim.lr must be > 0, got {config['optim']['lr']}")
    for bound in config["val"]["depth_ranges"]:
        if bound is not None and not (isinstance(bound, (int, float)) and bound > 0):
            raise SynergyError(f"val.depth_ranges entries must be metres > 0 or null, "
                               f"got {bound!r}")


def dump_config(config: dict) -> str:
    """YAML text of a resolved config (keys in schema order)."""
    import yaml

    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
