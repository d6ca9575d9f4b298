"""The trainer behind ``synergy train``: supervised and weakly supervised (alternating) training.

One :class:`Trainer` serves every config (``config/train_*.yaml``):

- **supervised**: every batch carries depth and labels (missing values are marked invalid:
  depth 0, label 255) and the full :class:`~synergy_ros.learning.losses.SynergyLoss` is minimised.
- **alternating** (weakly supervised outdoor fine-tuning, supplementary Sec. 8): each
  training dataset gets its own loader and steps take one batch from each in turn. A batch
  whose samples only carry depth computes only the depth loss terms and the parameters of
  the semantic branch (parameter groups ``semantic`` and ``semantic_head``) receive no
  gradient and are not updated (their ``.grad`` is cleared before the optimizer step, so
  neither momentum nor weight decay moves them); a semantics-only batch does the same for
  the ``depth`` group. The shared encoder and the sharing units are updated from the active
  loss only. Activations still flow through both branches (the lateral sharing units mix
  them), so the frozen branch's BatchNorm running statistics keep updating.
- **sequential** (the "fine-tuned" structure of supplementary Sec. 2 / Table 1: "first train a
  network on the data from A, and then fine-tune this network with the new data from B"):
  the first ``train.first_fraction`` of the steps minimise only task A's loss terms
  (``train.task_order[0]``), the rest only task B's, each stage freezing the other task's
  branch as an alternating step of that kind does; the learning-rate schedule (with its
  warm-up) restarts at the second stage. The stage follows from the step count, so resuming
  lands in the right stage.

A run folder holds ``config.yaml`` (the resolved config), ``last.pt`` (resumable checkpoint,
written every epoch, every ``train.checkpoint_every`` steps and on Ctrl-C / SIGTERM),
``best.pt`` (best validation ``val.best_metric``), ``train_log.csv`` (one row per step),
``epochs.csv`` (one row per epoch with validation metrics) and ``val_report.md`` (latest
depth-range table). Checkpoints are model files, so ``best.pt`` runs in the node as is.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from synergy_ros.core.atomic import atomic_write_text
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import get_label_set
from synergy_ros.core.modelfile import ModelMeta, load_model_file
from synergy_ros.evaluation.metrics import DEPTH_METRIC_KEYS, DepthRangeEvaluator, SemanticConfusion
from synergy_ros.learning.batches import (SeededDataset, batch_schedule, batches_per_epoch,
                                          build_dataset, consumed_per_source, make_loader,
                                          preflight, training_normalisation, with_normalisation)
from synergy_ros.learning.checkpoint import (capture_rng_state, checkpoint_path, load_checkpoint,
                                             load_weights, restore_rng_state, save_checkpoint)
from synergy_ros.learning.config import PARAMETER_GROUPS, dump_config
from synergy_ros.learning.distributed import DistInfo, any_rank, barrier, init_distributed
from synergy_ros.learning.losses import LOSS_NAMES, SynergyLoss
from synergy_ros.network import build_network, load_encoder_weights
from synergy_ros.runtime.device import torch_device

#: Frozen parameter groups per batch kind in alternating mode.
#: Table 3 places phi (depth_sharing) in the depth branch and gamma (semantic_sharing) in the
#: semantic branch, so each is frozen with its branch (supplementary Sec. 8).
FROZEN_GROUPS = {"depth": ("semantic", "semantic_sharing", "semantic_head"),
                 "semantic": ("depth", "depth_sharing"), "joint": ()}
SEMANTIC_METRIC_KEYS = ("pixel_acc", "mean_acc", "miou")
STEP_COLUMNS = ("step", "epoch", "kind", "loss", "lr", "head_lr", "skipped", "step_s",
                "data_s")


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C / SIGTERM after saving a resumable checkpoint."""

    def __init__(self, checkpoint: Path, step: int) -> None:
        super().__init__(f"interrupted at step {step}; resumable checkpoint saved to "
                         f"{checkpoint} (continue with --resume {checkpoint})")
        self.checkpoint = checkpoint
        self.step = step


@dataclasses.dataclass
class TrainState:
    """Position in the run: ``epoch`` (0-based), batches of it consumed, global step."""

    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    nonfinite_total: int = 0
    nonfinite_run: int = 0
    best_value: float | None = None


def lr_factor(step: int, total_steps: int, schedule: dict) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``.

    ``poly``: (1 - t)^power, ``cosine``: 0.5 (1 + cos(pi t)) with t = step / total (both
    floored at ``min_lr_ratio``), ``step``: gamma^(step // step_size), ``constant``: 1;
    a linear warm-up over ``warmup_steps`` multiplies all of them.
    """
    name = schedule["name"]
    progress = min(1.0, step / max(1, total_steps))
    floor = schedule["min_lr_ratio"]
    if name == "poly":
        factor = floor + (1 - floor) * (1 - progress) ** schedule["power"]
    elif name == "cosine":
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    elif name == "step":
        factor = schedule["gamma"] ** (step // max(1, schedule["step_size"]))
    else:
        factor = 1.0
    warmup = schedule["warmup_steps"]
    if warmup > 0 and step < warmup:
        factor *= (step + 1) / warmup
    return factor


def resolve_device(name: str) -> Any:
    """``auto`` -> cuda:0 if available else cpu; ``cpu``, ``cuda``, ``cuda:N`` -> a torch.device
    with an explicit index, checked to exist (:func:`synergy_ros.runtime.device.torch_device`);
    anything else is a SynergyError naming the config key."""

    try:
        return torch_device(name)
    except SynergyError as exc:
        raise SynergyError(f"config key device: {exc}") from exc


def batch_kind(batch: dict) -> str:
    """``depth`` (only depth targets), ``semantic`` (only labels) or ``joint``."""
    has_depth = bool(batch["has_depth"].any())
    has_labels = bool(batch["has_labels"].any())
    if has_depth and not has_labels:
        return "depth"
    if has_labels and not has_depth:
        return "semantic"
    return "joint"


class _StopFlag:
    """SIGINT/SIGTERM -> set a flag the loop checks between steps; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nsynergy train: {signal.Signals(signum).name} received; finishing the current "
              "step and saving a resumable checkpoint (Ctrl-C again to abort without saving)",
              file=sys.stderr, flush=True)

    def __enter__(self) -> "_StopFlag":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Build everything a config describes, then :meth:`fit`.

    Args:
        config: resolved config (:func:`synergy_ros.learning.config.load_config`).
        output: run folder (created; rank 0 writes into it).
        resume: checkpoint to continue from, ``"auto"`` (``output/last.pt`` if present) or
            None (fresh run; refuses a folder that already holds a checkpoint).
        dist: this process's rank info (default: from the torchrun environment).
    """

    def __init__(self, config: dict, output: str | os.PathLike, resume: str | None = None,
                 dist: DistInfo | None = None) -> None:
        import torch

        self.config = config
        self.output = Path(output)
        self.device = resolve_device(config["device"])
        self.dist = dist or init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        resume_path = self._resume_path(resume)
        if config["threads"] > 0:
            torch.set_num_threads(config["threads"])
        torch.manual_seed(config["seed"])
        if config["train"]["deterministic"]:
            torch.use_deterministic_algorithms(True)

        self.label_set = get_label_set(config["data"]["labels"])
        self.model = self._build_model()
        self.num_classes = self.model.num_classes
        if self.num_classes != self.label_set.num_classes:
            raise SynergyError(f"the network predicts {self.num_classes} classes but "
                               f"data.labels={self.label_set.name!r} has "
                               f"{self.label_set.num_classes}; set model.num_classes="
                               f"{self.label_set.num_classes}")
        self.loss = SynergyLoss(config["loss"] or None)
        self._check_best_metric()
        self._build_data()
        self.optimizer = self._build_optimizer()
        self.steps_per_epoch = len(self.schedule_order)
        total = config["train"]["epochs"] * self.steps_per_epoch
        if config["train"]["max_steps"] is not None:
            total = min(total, config["train"]["max_steps"])
        self.total_steps = total
        schedule = config["schedule"]

        def factor(step: int) -> float:
            _, start, length = self.stage(step)
            return lr_factor(step - start, length, schedule)

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.amp_enabled = bool(config["train"]["amp"]) and self.device.type == "cuda"
        self.amp_dtype = getattr(torch, config["train"]["amp_dtype"])
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_enabled and self.amp_dtype == torch.float16)
        self.state = TrainState()
        if resume_path is not None:
            self._restore(resume_path)
        self.forward_model = self._wrap_model()
        self._csv_handle: Any = None
        self._tensorboard: Any = None

    def stage(self, step: int) -> tuple[str | None, int, int]:
        """(task of ``step`` or None, first step of its stage, stage length in steps).

        Only ``train.mode: sequential`` has two stages (task_order[0], then [1]); every other
        mode is one stage without a fixed task (the batch decides).
        """
        train = self.config["train"]
        if train["mode"] != "sequential":
            return None, 0, self.total_steps
        first = min(max(1, round(self.total_steps * train["first_fraction"])),
                    self.total_steps - 1)
        if step < first:
            return train["task_order"][0], 0, first
        return train["task_order"][1], first, self.total_steps - first

    # ------------------------------------------------------------------ construction
    def _resume_path(self, resume: str | None) -> Path | None:
        last = checkpoint_path(self.output, "last")
        if resume == "auto":
            return last if last.is_file() else None
        if resume:
            path = Path(resume)
            if not path.is_file():
                raise SynergyError(f"--resume {resume}: no such checkpoint; pass a last.pt of a "
                                   "run or --resume auto")
            return path
        if last.is_file():
            raise SynergyError(f"{self.output} already holds a checkpoint ({last}); continue it "
                               "with --resume auto, or choose another --output")
        return None

    def _build_model(self) -> Any:
        init = self.config["init"]
        model = build_network(self.config["model"])
        if init["encoder_weights"]:
            load_encoder_weights(model, init["encoder_weights"])
        if init["checkpoint"]:
            payload = load_model_file(init["checkpoint"], weights_only=True)
            _check_depth_head(payload["meta"].network, model.config, str(init["checkpoint"]))
            source_classes = payload["meta"].num_classes
            skip: tuple[str, ...] = ()
            if source_classes != model.num_classes:
                if not init["replace_semantic_head"]:
                    raise SynergyError(f"init.checkpoint {init['checkpoint']} predicts "
                                       f"{source_classes} classes, the config "
                                       f"{model.num_classes}; set init.replace_semantic_head="
                                       "true to replace only the final semantic layer")
                skip = ("semantic_head.",)
            load_weights(model, payload["state_dict"], str(init["checkpoint"]),
                         skip_prefixes=skip)
        return model.to(self.device)

    def _dataset(self, spec: dict, train: bool, role: str) -> Any:
        data = self.config["data"]
        name = f"{role} ({spec.get('type', '?')})"
        try:
            dataset = build_dataset(spec, data["input_size"], train, self.config["seed"])
        except SynergyError as exc:
            raise SynergyError(f"{name}: {exc}") from exc
        own = getattr(dataset, "label_set", None)
        if own is not None and own.name != self.label_set.name:
            raise SynergyError(f"{name} has label set {own.name!r} but data.labels is "
                               f"{self.label_set.name!r}; set data.labels={own.name} (and "
                               f"model.num_classes={own.num_classes}) or map the dataset")
        preflight(dataset, name, data["input_size"], self.num_classes, data["preflight_samples"])
        return dataset

    def _build_data(self) -> None:
        data = self.config["data"]
        if not data["train"]:
            raise SynergyError("data.train is empty; list at least one dataset, e.g. "
                               "--set 'data.train=[{type: synthetic, num_frames: 256}]'")
        seed = self.config["seed"]
        # One input normalisation: the training datasets', also used by validation and written
        # into the model file (meta.mean/std), so inference normalises as training did.
        self.mean, self.std = training_normalisation(data["train"])
        self.train_sets = [SeededDataset(self._dataset(spec, True, f"data.train[{i}]"), seed + i)
                           for i, spec in enumerate(data["train"])]
        self.val_set = None
        if data["val"]:
            val_spec = with_normalisation(data["val"], self.mean, self.std, "data.val")
            self.val_set = SeededDataset(self._dataset(val_spec, False, "data.val"), seed)
        if self.config["train"]["mode"] == "supervised" and len(self.train_sets) > 1:
            from torch.utils.data import ConcatDataset

            self.train_sets = [SeededDataset(ConcatDataset([s.dataset for s in self.train_sets]),
                                             seed)]
        lengths = []
        for index, dataset in enumerate(self.train_sets):
            count = batches_per_epoch(len(dataset), data["batch_size"], self.dist.world_size,
                                      drop_last=True)
            if count == 0:
                raise SynergyError(
                    f"training dataset {index} has {len(dataset)} samples, fewer than "
                    f"data.batch_size={data['batch_size']} x {self.dist.world_size} process(es); "
                    "add data or lower the batch size")
            lengths.append(count)
        self.schedule_order = batch_schedule(lengths)

    def _build_optimizer(self) -> Any:
        import torch

        optim = self.config["optim"]
        groups = self.model.parameter_groups()
        if set(groups) != set(PARAMETER_GROUPS):
            raise AssertionError(f"parameter_groups() keys {sorted(groups)} != "
                                 f"{PARAMETER_GROUPS}")
        param_groups = []
        for name in PARAMETER_GROUPS:
            params = [p for p in groups[name] if p.requires_grad]
            if params:
                lr = optim["group_lr"][name] or optim["lr"]
                param_groups.append({"params": params, "lr": lr, "name": name})
        if optim["name"] == "sgd":
            return torch.optim.SGD(param_groups, lr=optim["lr"], momentum=optim["momentum"],
                                   weight_decay=optim["weight_decay"])
        betas = tuple(float(b) for b in optim["betas"])
        cls = torch.optim.Adam if optim["name"] == "adam" else torch.optim.AdamW
        return cls(param_groups, lr=optim["lr"], betas=betas,
                   weight_decay=optim["weight_decay"])

    def _wrap_model(self) -> Any:
        import torch

        model = self.model
        if self.config["train"]["compile"]:
            model = torch.compile(model)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.config["train"]["mode"] != "supervised")
        return model

    def meta(self, extra: dict | None = None) -> Any:
        """ModelMeta of the trained network (classes, palette, input size, the input
        normalisation it was trained with, max depth)."""

        return ModelMeta(network=self.model.config.to_dict(),
                         class_names=list(self.label_set.class_names),
                         palette=[list(c) for c in self.label_set.palette],
                         input_size=tuple(self.config["data"]["input_size"]),
                         mean=self.mean, std=self.std,
                         max_depth=self.model.config.max_depth, extra=dict(extra or {}))

    # ------------------------------------------------------------------ checkpoints
    def _restore(self, path: Path) -> None:
        payload = load_checkpoint(path)
        saved = payload["meta"].network
        current = self.model.config.to_dict()
        if saved != current:
            diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            legacy = (" (a run started before model.depth_head existed: resume with --set "
                      f"model.depth_head={saved['depth_head']})" if "depth_head" in diff else "")
            raise SynergyError(f"checkpoint {path} was trained with a different network ("
                               + ", ".join(f"{k}: {saved.get(k)!r} vs {current.get(k)!r}"
                                           for k in diff)
                               + "); resume with the run's config.yaml" + legacy + ", or start "
                               f"a new run from its weights with --set init.checkpoint={path}")
        training = payload["training"]
        load_weights(self.model, payload["state_dict"], str(path))
        try:
            self.optimizer.load_state_dict(training["optimizer"])
            self.scheduler.load_state_dict(training["scheduler"])
        except (ValueError, KeyError) as exc:
            saved_groups = [g.get("name") for g in training["optimizer"]["param_groups"]]
            split = ("; it was written before the 'sharing' parameter group was split into "
                     "depth_sharing / semantic_sharing, so its optimizer state cannot resume: "
                     f"start a new run from its weights with --set init.checkpoint={path}"
                     if "sharing" in saved_groups and "depth_sharing" not in saved_groups
                     else "; resume with the run's config.yaml")
            raise SynergyError(f"checkpoint {path}: optimizer/scheduler state does not match "
                               f"this config ({exc}){split}") from exc
        if training.get("scaler"):
            self.scaler.load_state_dict(training["scaler"])
        restore_rng_state(training["rng"])
        self.state = TrainState(epoch=int(training["epoch"]),
                                epoch_step=int(training["epoch_step"]),
                                step=int(training["step"]),
                                nonfinite_total=int(training.get("nonfinite_total", 0)),
                                best_value=(training.get("best") or {}).get("value"))
        if self.state.epoch_step > self.steps_per_epoch:
            raise SynergyError(f"checkpoint {path} stopped at batch {self.state.epoch_step} of "
                               f"an epoch that now has {self.steps_per_epoch}; the data or "
                               "batch size changed since. Resume with the run's config.yaml")

    def save(self, which: str = "last", metrics: dict | None = None) -> Path:
        """Write ``<output>/<which>.pt`` (rank 0 only) and return its path."""
        path = checkpoint_path(self.output, which)
        if not self.dist.is_main:
            return path
        val = self.config["val"]
        training = {
            "epoch": self.state.epoch, "epoch_step": self.state.epoch_step,
            "step": self.state.step, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(), "config": self.config,
            "best": {"metric": val["best_metric"], "mode": val["best_mode"],
                     "value": self.state.best_value},
            "nonfinite_total": self.state.nonfinite_total,
        }
        extra = {"metrics": metrics} if metrics else {}
        save_checkpoint(path, self.model.state_dict(), self.meta(extra), training)
        return path

    # ------------------------------------------------------------------ logging
    def _open_logs(self) -> None:
        if not self.dist.is_main:
            return
        self.output.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.output / "config.yaml", dump_config(self.config))

        self._columns = list(STEP_COLUMNS) + list(LOSS_NAMES)
        log = self.output / "train_log.csv"
        kept: list[list[str]] = []
        if log.is_file() and self.state.step > 0:  # resumed: drop rows after the checkpoint
            with open(log, newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
            kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= self.state.step]
        text = io.StringIO()
        csv.writer(text).writerows([self._columns, *kept])
        atomic_write_text(log, text.getvalue())
        self._csv_handle = open(log, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_handle)
        if self.config["log"]["tensorboard"]:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise SynergyError("log.tensorboard is true but TensorBoard is not installed; "
                                   "pip install tensorboard or set log.tensorboard=false") from exc
            self._tensorboard = SummaryWriter(str(self.output / "tensorboard"))

    def _log_step(self, row: dict) -> None:
        if self._csv_handle is None:
            return
        self._csv.writerow([_fmt(row.get(c, "")) for c in self._columns])
        self._csv_handle.flush()
        if self._tensorboard is not None and row.get("loss") not in (None, ""):
            for key in ("loss", "lr", *self.loss.weights):
                if row.get(key) not in (None, ""):
                    self._tensorboard.add_scalar(f"train/{key}", row[key], row["step"])

    def _log_epoch(self, row: dict, report: str | None) -> None:
        if not self.dist.is_main:
            return
        path = self.output / "epochs.csv"
        rows: list[dict] = []
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["epoch"]) < row["epoch"]]
        rows.append({k: _fmt(v) for k, v in row.items()})
        columns = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, text.getvalue())
        if report:
            atomic_write_text(self.output / "val_report.md", report)
        if self._tensorboard is not None:
            for key, value in row.items():
                if isinstance(value, float):
                    self._tensorboard.add_scalar(f"val/{key}", value, row["epoch"])

    def _close_logs(self) -> None:
        if self._csv_handle is not None:
            self._csv_handle.close()
            self._csv_handle = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    # ------------------------------------------------------------------ training
    def _loaders(self, epoch: int, epoch_step: int) -> list[Any]:
        data = self.config["data"]
        skips = consumed_per_source(self.schedule_order, epoch_step, len(self.train_sets))
        loaders = [make_loader(dataset, batch_size=data["batch_size"], shuffle=True,
                               seed=self.config["seed"], epoch=epoch, skip_batches=skip,
                               rank=self.dist.rank, world_size=self.dist.world_size,
                               num_workers=data["num_workers"], drop_last=True,
                               pin_memory=self.device.type == "cuda")
                   for dataset, skip in zip(self.train_sets, skips)]
        return loaders

    def _train_step(self, batch: dict, kind: str) -> tuple[float | None, dict]:
        import torch

        alternating = self.config["train"]["mode"] in ("alternating", "sequential")
        use_depth = not alternating or kind != "semantic"
        use_labels = not alternating or kind != "depth"
        image = batch["image"].to(self.device, non_blocking=True)
        depth = batch["depth"].to(self.device, non_blocking=True) if use_depth else None
        labels = batch["labels"].to(self.device, non_blocking=True) if use_labels else None
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_enabled):
            output = self.forward_model(image)
        total, parts = self.loss(_float_output(output), depth, labels)
        finite = bool(torch.isfinite(total.detach()))
        if any_rank(not finite, self.dist, self.device):
            self.optimizer.zero_grad(set_to_none=True)
            return None, parts
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if alternating:
            for group in self.optimizer.param_groups:
                if group["name"] in FROZEN_GROUPS[kind]:
                    for param in group["params"]:
                        param.grad = None
        clip = self.config["optim"]["grad_clip"]
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]
                      if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(total.detach()), parts

    def _epoch_batches(self, loaders: list[Any]) -> Any:
        iterators = [iter(loader) for loader in loaders]
        for source in self.schedule_order[self.state.epoch_step:]:
            start = time.perf_counter()
            batch = next(iterators[source])
            yield batch, time.perf_counter() - start

    def fit(self) -> dict:
        """Train to the configured end; returns a summary dict. Raises TrainingInterrupted."""
        train_cfg = self.config["train"]
        self._open_logs()
        progress = None
        if self.dist.is_main and train_cfg["progress"]:
            from tqdm import tqdm

            progress = tqdm(total=self.total_steps, initial=self.state.step, unit="step",
                            dynamic_ncols=True, desc="train", file=sys.stderr)
        started = time.perf_counter()
        start_step = self.state.step
        last_metrics: dict = {}
        try:
            with _StopFlag() as stop:
                while self.state.step < self.total_steps:
                    epoch = self.state.epoch
                    if progress is not None:
                        progress.set_description(f"epoch {epoch + 1}/{train_cfg['epochs']}")
                    loaders = self._loaders(epoch, self.state.epoch_step)
                    for batch, data_s in self._epoch_batches(loaders):
                        self._one_step(batch, data_s, progress)
                        if any_rank(stop.requested, self.dist, self.device):
                            path = self.save("last")
                            barrier(self.dist)
                            raise TrainingInterrupted(path, self.state.step)
                        if self.state.step >= self.total_steps:
                            break
                        every = train_cfg["checkpoint_every"]
                        if every and self.state.step % every == 0:
                            self.save("last")
                    if self.state.epoch_step >= self.steps_per_epoch:
                        self.state.epoch += 1
                        self.state.epoch_step = 0
                    last_metrics = self._end_of_epoch(epoch) or last_metrics
        finally:
            if progress is not None:
                progress.close()
            self._close_logs()
        elapsed = time.perf_counter() - started
        summary = {"steps": self.state.step, "epochs": self.state.epoch,
                   "seconds": round(elapsed, 2),
                   "steps_per_s": round((self.state.step - start_step) / max(elapsed, 1e-9), 3),
                   "nonfinite_steps": self.state.nonfinite_total,
                   "best": {"metric": self.config["val"]["best_metric"],
                            "value": self.state.best_value},
                   "last_val": last_metrics, "output": str(self.output)}
        return summary

    def _one_step(self, batch: dict, data_s: float, progress: Any) -> None:
        start = time.perf_counter()
        kind = self.stage(self.state.step)[0] or batch_kind(batch)
        loss, parts = self._train_step(batch, kind)
        lrs = {g["name"]: g["lr"] for g in self.optimizer.param_groups}
        self.scheduler.step()
        self.state.step += 1
        self.state.epoch_step += 1
        if loss is None:
            self.state.nonfinite_total += 1
            self.state.nonfinite_run += 1
        else:
            self.state.nonfinite_run = 0
        row = {"step": self.state.step, "epoch": self.state.epoch, "kind": kind,
               "loss": loss if loss is not None else float("nan"),
               "lr": lrs.get("encoder", next(iter(lrs.values()))),
               "head_lr": lrs.get("semantic_head", ""), "skipped": int(loss is None),
               "step_s": time.perf_counter() - start, "data_s": data_s}
        row.update({k: v for k, v in parts.items() if k != "total"})
        self._log_step(row)
        limit = self.config["train"]["max_nonfinite"]
        if self.state.nonfinite_run >= limit:
            raise SynergyError(f"the loss was not finite for {limit} steps in a row (last at "
                               f"step {self.state.step}, {self.state.nonfinite_total} in "
                               "total); lower optim.lr, set optim.grad_clip, or check the "
                               "data for NaN/inf")
        if progress is not None:
            progress.set_postfix(loss=f"{loss:.4f}" if loss is not None else "nan",
                                 lr=f"{row['lr']:.2e}", refresh=False)
            progress.update(1)

    def _end_of_epoch(self, epoch: int) -> dict | None:
        """Validate after finished epochs, update best.pt, save last.pt."""
        finished = self.state.epoch_step == 0 and self.state.epoch == epoch + 1
        every = self.config["val"]["every_epochs"]
        metrics = None
        if finished and self.val_set is not None and every and (epoch + 1) % every == 0:
            if self.dist.is_main:
                metrics, table = self.validate()
                improved = self._is_better(metrics)
                row = {"epoch": epoch + 1, "step": self.state.step, **metrics}
                self._log_epoch(row, f"## Validation after epoch {epoch + 1} (step "
                                     f"{self.state.step})\n\nDepth by range (metres):\n\n{table}")
                if improved:
                    self.state.best_value = metrics[self.config["val"]["best_metric"]]
                    self.save("best", metrics)
                _print_epoch(epoch + 1, metrics, improved, self.config["val"]["best_metric"])
            barrier(self.dist)
        if finished or self.state.step >= self.total_steps:
            self.save("last", metrics)
        return metrics

    def _check_best_metric(self) -> None:
        valid = ("loss", *DEPTH_METRIC_KEYS, *SEMANTIC_METRIC_KEYS)
        name = self.config["val"]["best_metric"]
        if name not in valid:
            raise SynergyError(f"val.best_metric={name!r} is not a validation metric; choose one "
                               f"of {', '.join(valid)}")

    def _is_better(self, metrics: dict) -> bool:
        value = metrics[self.config["val"]["best_metric"]]
        if value is None or not math.isfinite(value):
            return False
        if self.state.best_value is None:
            return True
        if self.config["val"]["best_mode"] == "min":
            return value < self.state.best_value
        return value > self.state.best_value

    def validate(self, dataset: Any = None) -> tuple[dict, str]:
        """Evaluate on the validation set; returns (flat metrics dict, markdown report)."""
        data = self.config["data"]
        loader = make_loader(dataset or self.val_set,
                             batch_size=data["val_batch_size"] or data["batch_size"],
                             shuffle=False, seed=self.config["seed"], epoch=0, skip_batches=0,
                             rank=0, world_size=1, num_workers=data["num_workers"],
                             drop_last=False)
        metrics, report = validate(self.model, loader, depth_ranges=self.config["val"][
                                       "depth_ranges"], device=self.device, loss=self.loss,
                                   max_batches=self.config["val"]["max_batches"],
                                   amp_dtype=self.amp_dtype if self.amp_enabled else None)
        self.model.train()
        return metrics, report


def validate(model: Any, loader: Any, depth_ranges: Any, device: Any, loss: Any = None,
             max_batches: int | None = None, amp_dtype: Any = None,
             predict: Any = None) -> tuple[dict, str]:
    """Score a model (or a ``predict(image) -> SynergyOutput`` function) on a loader.

    Depth metrics (``abs_rel``, ``rmse``, ``delta1``, ...) are the depth-range evaluator's
    "all" row (per-image metrics averaged over images, GT in (min_depth, max_depth));
    semantic metrics (``miou``, ``pixel_acc``, ``mean_acc``) come from the confusion matrix;
    ``loss`` is the mean loss per batch when ``loss`` is given.

    Returns:
        (flat metrics dict, markdown report with the depth-range table).
    """
    import torch

    config = model.config
    ranges = DepthRangeEvaluator([r for r in depth_ranges if r is not None],
                                 min_depth=config.min_depth, max_depth=config.max_depth)
    confusion = SemanticConfusion(model.num_classes)
    predict = predict or model
    loss_sum, batches = 0.0, 0
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                         enabled=amp_dtype is not None):
        for index, batch in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            image = batch["image"].to(device)
            output = _float_output(predict(image))
            depth = batch["depth"].to(device)
            labels = batch["labels"].to(device)
            has_depth, has_labels = batch["has_depth"], batch["has_labels"]
            if loss is not None:
                total, _ = loss(output, depth if bool(has_depth.any()) else None,
                                labels if bool(has_labels.any()) else None)
                loss_sum += float(total)
            batches += 1
            pred_depth = model.clamp_depth(output.depth)[:, 0].cpu()
            pred_labels = output.semantic_logits.argmax(1).cpu()
            for i in range(image.shape[0]):
                if bool(has_depth[i]):
                    ranges.update(pred_depth[i], batch["depth"][i, 0])
                if bool(has_labels[i]):
                    confusion.update(pred_labels[i], batch["labels"][i])
    metrics: dict = {"loss": loss_sum / max(1, batches)} if loss is not None else {}
    overall = ranges.compute()["all"]
    metrics.update({k: float(overall[k]) for k in DEPTH_METRIC_KEYS})
    semantic = confusion.compute()
    metrics.update({k: float(semantic[k]) for k in SEMANTIC_METRIC_KEYS})
    metrics["images"] = int(overall["images"])
    return metrics, ranges.to_markdown()


def _check_depth_head(source: dict, config: Any, path: str) -> None:
    """Refuse weights trained for another depth head; warn when a sigmoid head's range moves.

    The softplus head predicts metres independent of ``max_depth``, so starting an outdoor run
    (80 m) from an indoor model (10 m) keeps its depths. The sigmoid head maps the same raw
    output to min + (max - min) * sigmoid(x): a new range rescales every prediction.
    """
    head = source.get("depth_head")
    if head != config.depth_head:
        raise SynergyError(f"init.checkpoint {path} was trained with depth_head={head!r} but "
                           f"the config builds depth_head={config.depth_head!r}; the same "
                           "weights would predict other depths. Set "
                           f"model.depth_head={head} (model files written before the field "
                           "existed have the sigmoid head)")
    old_span = float(source["max_depth"]) - float(source["min_depth"])
    new_span = config.max_depth - config.min_depth
    if head == "sigmoid" and abs(new_span - old_span) > 1e-9 * old_span:
        warnings.warn(f"init.checkpoint {path} has a sigmoid depth head for "
                      f"{source['min_depth']}-{source['max_depth']} m; with "
                      f"{config.min_depth}-{config.max_depth} m every initial prediction is "
                      f"scaled by ~{new_span / old_span:.3g} (e.g. an indoor model starting an "
                      "outdoor run). Training has to undo that; a softplus-head source model "
                      "keeps its metres (docs/model.md)", stacklevel=3)


def _float_output(output: Any) -> Any:
    """Cast autocast (fp16/bf16) outputs to float32 so losses and metrics run in fp32."""
    return output._replace(depth=output.depth.float(),
                           semantic_logits=output.semantic_logits.float())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.9g}" if math.isfinite(value) else str(value)
    return str(value)


def _print_epoch(epoch: int, metrics: dict, improved: bool, best_metric: str) -> None:
    keys = [k for k in ("loss", "abs_rel", "rmse", "delta1", "miou", "pixel_acc") if k in metrics]
    from tqdm import tqdm

    text = ", ".join(f"{k} {metrics[k]:.4f}" for k in keys)
    mark = f" (best {best_metric})" if improved else ""
    tqdm.write(f"epoch {epoch}: val {text}{mark}", file=sys.stderr)


def run_training(config: dict, output: str | os.PathLike, resume: str | None = None) -> dict:
    """Build a :class:`Trainer` for ``config`` and train; returns the summary dict."""
    return Trainer(config, output, resume=resume).fit()
