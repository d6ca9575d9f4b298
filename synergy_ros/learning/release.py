"""Release a trained model: score it on a held-out split against constant baselines, write a
compact model file and a JSON metadata file beside it.

``synergy train --config C --release models/NAME.pt`` trains and then calls
:func:`release_model`, which writes

- ``models/NAME.pt``: a model file (:mod:`synergy_ros.core.modelfile`) without optimizer state,
  weights in float16 when ``release.fp16`` (the runtime casts them back to float32);
  ``meta.extra`` holds the metrics and the reproducing command.
- ``models/NAME.json``: config, class names, palette, input size, max depth, the held-out
  metrics of the model (scored with the weights as released, float16 rounding included) and
  of the constant baselines (the training set's mean depth for every
  pixel; its most frequent class for every pixel), the training summary and the command.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Sequence

from synergy_ros.core.atomic import atomic_write_text
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import IGNORE_INDEX
from synergy_ros.core.machine import machine_summary
from synergy_ros.core.modelfile import ModelMeta, load_model_file, save_model_file
from synergy_ros.learning.batches import (SeededDataset, build_dataset, make_loader,
                                          with_normalisation)
from synergy_ros.learning.checkpoint import load_weights
from synergy_ros.learning.trainer import validate
from synergy_ros.network import SynergyOutput, build_network


def training_statistics(datasets: Sequence[Any], samples: int,
                        num_classes: int) -> tuple[float, int]:
    """Mean valid depth (metres) and most frequent class id over the first ``samples`` of
    each training dataset (weakly supervised runs get depth from one, labels from another).

    Raises SynergyError when those samples hold no valid depth or no labelled pixel.
    """
    import numpy as np

    depth_sum, depth_count = 0.0, 0
    class_counts = np.zeros(num_classes, dtype=np.int64)
    for dataset in datasets:
        for index in range(min(samples, len(dataset))):
            sample = dataset[index]
            depth = sample["depth"].numpy()
            valid = np.isfinite(depth) & (depth > 0)
            depth_sum += float(depth[valid].sum())
            depth_count += int(valid.sum())
            labels = sample["labels"].numpy().ravel()
            labels = labels[labels != IGNORE_INDEX]
            class_counts += np.bincount(labels, minlength=num_classes)[:num_classes]
    if depth_count == 0:
        raise SynergyError("the training data has no valid depth to form the constant-depth "
                           "baseline from")
    if not class_counts.any():
        raise SynergyError("the training data has no labelled pixel to form the "
                           "constant-class baseline from")
    return depth_sum / depth_count, int(class_counts.argmax())


def release_model(checkpoint: str | os.PathLike, model_path: str | os.PathLike, config: dict,
                  command: str, summary: dict | None = None) -> dict:
    """Score ``checkpoint`` on ``config['release']['test']`` and write the release files.

    Returns the JSON metadata dict that was written next to ``model_path``.
    """
    import torch

    release = config["release"]
    if not release["test"]:
        raise SynergyError("--release needs a held-out dataset: set release.test, e.g. "
                           "--set 'release.test={type: synthetic, split: test, num_samples: 200}'")
    payload = load_model_file(checkpoint, weights_only=True)
    meta: ModelMeta = payload["meta"]
    state = payload["state_dict"]
    if release["fp16"]:  # score the weights that ship, after their rounding to float16
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    model = build_network(meta.network)
    load_weights(model, state, str(checkpoint))
    device = torch.device("cpu")
    data = config["data"]
    size = data["input_size"]
    test_spec = with_normalisation(release["test"], meta.mean, meta.std, "release.test")
    test = SeededDataset(build_dataset(test_spec, size, False, config["seed"]), config["seed"])
    loader_args = dict(batch_size=data["val_batch_size"] or data["batch_size"], shuffle=False,
                       seed=config["seed"], epoch=0, skip_batches=0, rank=0, world_size=1,
                       num_workers=0, drop_last=False)
    ranges = config["val"]["depth_ranges"]
    model_metrics, model_table = validate(model, make_loader(test, **loader_args), ranges,
                                          device)
    train_sets = [build_dataset(spec, size, False, config["seed"]) for spec in data["train"]]
    mean_depth, majority = training_statistics(train_sets, release["baseline_samples"],
                                               model.num_classes)

    def constant(image: torch.Tensor) -> SynergyOutput:
        batch, _, height, width = image.shape
        depth = torch.full((batch, 1, height, width), mean_depth)
        logits = torch.zeros(batch, model.num_classes, height, width)
        logits[:, majority] = 1.0
        return SynergyOutput(depth, logits)

    base_metrics, base_table = validate(model, make_loader(test, **loader_args), ranges, device,
                                        predict=constant)
    info = {
        "model_file": Path(model_path).name,
        "command": command,
        "config": config,
        "network": meta.network,
        "class_names": meta.class_names,
        "palette": [list(c) for c in meta.palette],
        "input_size": list(meta.input_size),
        "max_depth": meta.max_depth,
        "weights_dtype": "float16" if release["fp16"] else "float32",
        "held_out": {"dataset": release["test"], "images": model_metrics["images"],
                     "model": _rounded(model_metrics), "model_depth_ranges": model_table,
                     "constant_baseline": {"mean_depth_m": round(mean_depth, 4),
                                           "majority_class": meta.class_names[majority],
                                           **_rounded(base_metrics)},
                     "constant_baseline_depth_ranges": base_table},
        "training": summary or {},
        "machine": machine_summary(),
        "python": platform.python_version(), "torch": torch.__version__,
    }
    held_out = info["held_out"]
    meta.extra = {"held_out": {k: held_out[k] for k in ("dataset", "model", "constant_baseline")},
                  "command": command}
    save_model_file(model_path, state, meta)
    atomic_write_text(Path(model_path).with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return info


def _rounded(metrics: dict) -> dict:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()}
