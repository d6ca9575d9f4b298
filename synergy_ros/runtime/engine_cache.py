"""Build-once caches for derived model files (TensorRT engines, ONNX exports of .pt files).

A cached artifact ``X`` has a sidecar ``X.json`` (written after ``X``; both atomically via
``synergy_ros.core.atomic``) recording the *key* it was built for, the artifact's SHA-256 and size,
and extra fields such as the model metadata and the engine's I/O tensors. An artifact is reused
only when its sidecar matches the expected key and the file's hash; otherwise it is stale and
rebuilt with a warning. A ``X.lock`` file taken with ``fcntl.flock`` makes concurrent processes
wait for one build instead of building the same engine twice.

Engine keys (:class:`EngineKey`) are the ONNX file's SHA-256, TensorRT version, GPU name and
compute capability, precision and input shape, and for INT8 the calibration image set
(:func:`calibration_digest`) of the Q/DQ ONNX it is built from: change any of them and a new
engine is built. Quantized ONNX files made for engines are cached under the same digest, so
new calibration images mean a new quantization, never a silent reuse of the old one.
This module is plain Python (no TensorRT import) so it is tested everywhere.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from synergy_ros.core.atomic import atomic_write_bytes, atomic_write_text
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.rgb import IMAGE_SUFFIXES

LOG = logging.getLogger("synergy_ros.runtime.cache")
CACHE_FORMAT = "synergy_ros.cached_artifact"
CACHE_FORMAT_VERSION = 1


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def key_digest(key: dict) -> str:
    """Short stable digest (16 hex chars) of a JSON-serialisable key, used in file names."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def lock_path(artifact: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.lock`` (kept after use; deleting it would race)."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".lock")


@contextlib.contextmanager
def file_lock(artifact: str | os.PathLike, timeout_s: float = 3600.0,
              poll_s: float = 0.2) -> Iterator[float]:
    """Hold an exclusive ``fcntl.flock`` on ``<artifact>.lock``; yields seconds spent waiting.

    Another process holding the lock (building the same artifact) is waited for, with a log
    line; after ``timeout_s`` a SynergyError names the lock file. The kernel drops the lock
    when its holder dies, so a crashed build never blocks forever.
    """
    path = lock_path(artifact)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - closed in finally
    start = time.monotonic()
    try:
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    LOG.info("waiting for another process building %s (lock %s)",
                             Path(artifact).name, path)
                    announced = True
                if time.monotonic() - start > timeout_s:
                    raise SynergyError(
                        f"timed out after {timeout_s:.0f} s waiting for the build lock {path}; "
                        "another process is still building it - wait for it, or stop it and "
                        "retry") from None
                time.sleep(poll_s)
        yield time.monotonic() - start
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def read_record(artifact: str | os.PathLike) -> dict | None:
    """The sidecar record of ``artifact``; None when missing; ``{"error": ...}`` if unreadable."""
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"error": f"unreadable sidecar {path.name}: {exc}"}
    return record if isinstance(record, dict) else {"error": f"sidecar {path.name} is not a dict"}


def record_problems(artifact: str | os.PathLike, record: dict | None, key: dict,
                    check_hash: bool = True) -> list[str]:
    """Why ``artifact`` + its sidecar ``record`` cannot be reused for ``key`` (empty: reusable)."""
    artifact = Path(artifact)
    if not artifact.is_file():
        return [f"{artifact.name} does not exist"]
    if record is None:
        return [f"no sidecar {sidecar_path(artifact).name}"]
    if "error" in record:
        return [record["error"]]
    if record.get("format") != CACHE_FORMAT:
        return [f"sidecar format {record.get('format')!r} is not {CACHE_FORMAT!r}"]
    problems = []
    recorded_key = record.get("key") or {}
    for name in sorted(set(key) | set(recorded_key)):
        if recorded_key.get(name) != key.get(name):
            problems.append(f"{name}: built for {recorded_key.get(name)!r}, "
                            f"need {key.get(name)!r}")
    size = artifact.stat().st_size
    if record.get("size") != size:
        problems.append(f"size {size} B differs from the recorded {record.get('size')} B "
                        "(truncated or replaced)")
    elif check_hash and record.get("sha256") != file_sha256(artifact):
        problems.append("SHA-256 differs from the recorded one (corrupted or replaced)")
    return problems


class CacheResult(NamedTuple):
    """Outcome of :func:`cached_build`: the artifact, its sidecar record, whether it was built
    now, and how long this process waited for another one's build lock (seconds)."""

    path: Path
    record: dict
    built: bool
    waited_s: float


def cached_build(artifact: str | os.PathLike, key: dict,
                 build: Callable[[], tuple[bytes, dict]], what: str = "artifact",
                 lock_timeout_s: float = 3600.0) -> CacheResult:
    """Return a valid ``artifact`` for ``key``, building it (once, under a file lock) if needed.

    ``build()`` returns ``(artifact_bytes, extra_record_fields)``; the artifact is written
    atomically, then its sidecar (key, sha256, size, build time, extras). A stale artifact is
    rebuilt with a warning naming why.
    """
    artifact = Path(artifact)
    record = read_record(artifact)
    if record is not None and not record_problems(artifact, record, key):
        return CacheResult(artifact, record, False, 0.0)
    with file_lock(artifact, timeout_s=lock_timeout_s) as waited:
        record = read_record(artifact)  # another process may have built it while we waited
        problems = record_problems(artifact, record, key)
        if record is not None and not problems:
            return CacheResult(artifact, record, False, waited)
        if artifact.exists() or record is not None:
            LOG.warning("%s %s is stale, rebuilding: %s", what, artifact, "; ".join(problems))
        else:
            LOG.info("building %s %s", what, artifact)
        start = time.monotonic()
        data, extra = build()
        seconds = time.monotonic() - start
        record = {**extra, "format": CACHE_FORMAT, "format_version": CACHE_FORMAT_VERSION,
                  "key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                  "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  "build_seconds": round(seconds, 3)}
        atomic_write_bytes(artifact, data)
        atomic_write_text(sidecar_path(artifact), json.dumps(record, indent=2, sort_keys=True))
        LOG.info("built %s %s in %.1f s", what, artifact, seconds)
        return CacheResult(artifact, record, True, waited)


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """What a TensorRT engine is valid for; any change means a new engine.

    input_shape is the engine's (B, 3, h, w) input in pixels (B = -1: a dynamic batch);
    calibration the INT8 calibration set's :func:`calibration_digest` (None for fp32/fp16);
    max_batch the top of a dynamic-batch engine's optimisation profile 1..max_batch (None for
    a static batch or a profile 1..1). Fields that are None are left out of the dict, so the
    keys and file names of engines without them are those of earlier releases.
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shape: tuple
    calibration: str | None = None
    max_batch: int | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable dict (input_shape as a list; None fields left out)."""
        data = dataclasses.asdict(self)
        data["input_shape"] = [int(v) for v in self.input_shape]
        for optional in ("calibration", "max_batch"):
            if data[optional] is None:
                del data[optional]
        return data

    def digest(self) -> str:
        """16-hex digest used in the engine file name."""
        return key_digest(self.to_dict())


def engine_cache_path(cache_dir: str | os.PathLike, onnx_path: str | os.PathLike,
                      key: EngineKey) -> Path:
    """``<cache_dir>/<onnx stem>.<precision>.<key digest>.engine``."""
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{key.precision}.{key.digest()}.engine"


def environment_problems(record: dict, tensorrt_version: str, gpu_name: str,
                         compute_capability: str) -> list[str]:
    """Why an engine with sidecar ``record`` cannot run on this TensorRT version and GPU."""
    key = record.get("key") or {}
    problems = []
    for name, current in (("tensorrt_version", tensorrt_version), ("gpu_name", gpu_name),
                          ("compute_capability", compute_capability)):
        if key.get(name) != current:
            problems.append(f"built with {name} {key.get(name)!r}, this machine has "
                            f"{current!r}")
    return problems


def io_problems(actual: dict, expected: dict) -> list[str]:
    """Compare I/O tensor specs ``{name: {"mode", "shape", "dtype"}}``; -1 in expected matches
    any size. Returns the differences (empty when they agree)."""
    problems = []
    missing = sorted(set(expected) - set(actual))
    if missing:
        problems.append(f"missing tensors {missing} (has {sorted(actual)})")
    for name in sorted(set(expected) & set(actual)):
        want, have = expected[name], actual[name]
        if want.get("mode") != have.get("mode"):
            problems.append(f"{name} is an {have.get('mode')}, expected an {want.get('mode')}")
        want_shape, have_shape = list(want.get("shape", [])), list(have.get("shape", []))
        if len(want_shape) != len(have_shape) or any(
                w not in (-1, None) and h not in (-1, None) and int(w) != int(h)
                for w, h in zip(want_shape, have_shape)):
            problems.append(f"{name} has shape {have_shape}, expected {want_shape}")
        if want.get("dtype") and have.get("dtype") and want["dtype"] != have["dtype"]:
            problems.append(f"{name} has dtype {have['dtype']}, expected {want['dtype']}")
    return problems


#: Part of every calibration digest: bump it when calibration reads the images differently
#: (preprocessing, batching), so calibrations made the old way are not reused. 2: images are
#: resized with the shared training/inference rule (area when shrinking). 3: Q/DQ ONNX
#: calibrated by onnxruntime.quantization (runtime/quantizer.py) instead of TensorRT's
#: implicit calibrator.
CALIBRATION_FORMAT = 3


def calibration_files(image_dir: str | os.PathLike, max_images: int) -> list[Path]:
    """The images INT8 calibration reads: ``image_dir``'s image files sorted by name, the first
    ``max_images``. SynergyError when the folder is missing or holds no images."""
    folder = Path(image_dir)
    if int(max_images) < 1:
        raise SynergyError(f"max calibration images must be >= 1, got {max_images}")
    if not folder.is_dir():
        raise SynergyError(f"--calib-images {folder} is not a folder; pass a folder of camera "
                           "frames (png/jpg)")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SynergyError(f"INT8 calibration: no images ({', '.join(IMAGE_SUFFIXES)}) in "
                           f"{folder}; pass --calib-images with a few hundred frames like the "
                           "deployment camera's")
    return files[:int(max_images)]


def calibration_digest(files: list[Path], max_images: int) -> str:
    """16-hex digest of a calibration set: each file's name, size and content SHA-256 (content,
    not mtime: a copied or touched folder is the same set, an edited image is not), the
    ``max_images`` setting and :data:`CALIBRATION_FORMAT`."""
    entries = [[Path(f).name, Path(f).stat().st_size, file_sha256(f)] for f in files]
    return key_digest({"format": CALIBRATION_FORMAT, "max_images": int(max_images),
                       "files": entries})
