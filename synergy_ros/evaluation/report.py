"""Render evaluation results: markdown tables, per-frame CSV, colourised PNGs, plots.

Everything here takes plain numpy arrays and the JSON-ready result dict of
:mod:`synergy_ros.evaluation.evaluator`, so the same pictures serve ``synergy evaluate`` and
``synergy demo``. Images are (H, W, 3) uint8 RGB (label images are coloured by
:func:`synergy_ros.core.labels.colorize`);
depth is (H, W) float32 metres with NaN or <= 0 invalid.
PNGs are written through OpenCV (always available); the error-vs-range and error-over-time
plots need matplotlib, an optional dependency: without it they are skipped with a note.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from synergy_ros.core.atomic import atomic_write_bytes, atomic_write_text

#: Depth metric keys in table order, with the column titles of the paper's Tables 4-7.
DEPTH_COLUMNS = (("abs_rel", "rel"), ("sq_rel", "sq rel"), ("rmse", "rms (m)"),
                 ("rmse_log", "rms (log)"), ("log10", "log10"), ("delta1", "δ<1.25"),
                 ("delta2", "δ<1.25²"), ("delta3", "δ<1.25³"))
DEPTH_KEYS = tuple(key for key, _ in DEPTH_COLUMNS)
#: Rendering of an invalid pixel (no depth / no label): black.
INVALID_RGB = (0, 0, 0)


# ---------------------------------------------------------------------------------------------
# Colourised images
# ---------------------------------------------------------------------------------------------
def colorize_scalar(values: np.ndarray, low: float, high: float,
                    colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """Map (H, W) values in [low, high] to an (H, W, 3) uint8 RGB colormap; NaN/inf -> black."""
    values = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(values)
    scale = 255.0 / max(high - low, 1e-9)
    index = np.clip((np.where(valid, values, low) - low) * scale, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(index, colormap), cv2.COLOR_BGR2RGB)
    rgb[~valid] = INVALID_RGB
    return rgb


def colorize_depth(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """Colour (H, W) depth in metres from 0 (blue) to ``max_depth`` (red); invalid black."""
    depth = np.asarray(depth, dtype=np.float32)
    return colorize_scalar(np.where(depth > 0, depth, np.nan), 0.0, max_depth)


def colorize_error(pred: np.ndarray, gt: np.ndarray, max_rel: float = 0.5) -> np.ndarray:
    """Colour the absolute relative error ``|pred - gt| / gt`` from 0 to ``max_rel``.

    Pixels without valid ground truth (<= 0, NaN) or prediction are black.
    """
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = (gt > 0) & np.isfinite(gt) & (pred > 0) & np.isfinite(pred)
        rel = np.where(valid, np.abs(pred - gt) / np.where(valid, gt, 1.0), np.nan)
    return colorize_scalar(rel, 0.0, max_rel, cv2.COLORMAP_INFERNO)


def render_cloud_view(xyz: np.ndarray, rgb: np.ndarray, height: int, width: int,
                      yaw_deg: float = 35.0, pitch_deg: float = 25.0) -> np.ndarray:
    """Render a coloured point cloud from an oblique virtual camera (z-buffered splats).

    Args:
        xyz: (N, 3) points in the optical frame (x right, y down, z forward), metres; rows
            with NaN are skipped.
        rgb: (N, 3) uint8 colours.
        height, width: output size in pixels.
        yaw_deg, pitch_deg: rotation of the view about the cloud's centre (radians internally).

    Returns (height, width, 3) uint8 RGB on a dark background.
    """
    image = np.full((height, width, 3), 24, dtype=np.uint8)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    keep = np.all(np.isfinite(xyz), axis=1)
    xyz, rgb = xyz[keep], rgb[keep]
    if len(xyz) == 0:
        return image
    centre = np.median(xyz, axis=0)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    rot_y = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0],
                      [-math.sin(yaw), 0, math.cos(yaw)]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)],
                      [0, math.sin(pitch), math.cos(pitch)]])
    local = (xyz - centre) @ (rot_x @ rot_y).T
    extent = float(np.percentile(np.linalg.norm(local, axis=1), 98)) or 1.0
    z = local[:, 2] + 2.5 * extent  # virtual camera 2.5 extents behind the centre
    focal = 1.6 * min(height, width)
    front = z > 1e-6
    u = np.round(focal * local[front, 0] / z[front] + width / 2).astype(np.int64)
    v = np.round(focal * local[front, 1] / z[front] + height / 2).astype(np.int64)
    z, colours = z[front], rgb[front]
    order = np.argsort(-z)  # far first: nearer points overwrite them
    u, v, colours = u[order], v[order], colours[order]
    splat = int(np.clip(round(1.2 * math.sqrt(height * width / max(len(u), 1))), 1, 4))
    for du in range(splat):  # square splats sized so the cloud covers without holes
        for dv in range(splat):
            uu, vv = u + du, v + dv
            inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
            image[vv[inside], uu[inside]] = colours[inside]
    return image


def captioned(image: np.ndarray, caption: str) -> np.ndarray:
    """Return ``image`` (H, W, 3) RGB with a caption bar on top."""
    bar = np.full((22, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(bar, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def panel_strip(panels: Iterable[tuple[str, np.ndarray]], height: int) -> np.ndarray:
    """Scale each (caption, RGB image) to ``height`` pixels and place them side by side."""
    columns = []
    for caption, image in panels:
        scale = height / image.shape[0]
        width = max(1, int(round(image.shape[1] * scale)))
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
        columns.append(captioned(resized, caption))
        columns.append(np.full((height + 22, 4, 3), 255, dtype=np.uint8))
    return np.concatenate(columns[:-1], axis=1)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Atomically write an (H, W, 3) uint8 RGB image as PNG; returns the path."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path} as PNG")
    atomic_write_bytes(path, data.tobytes())
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def depth_table_markdown(rows: Sequence[tuple[str, dict]]) -> str:
    """Markdown table with one row per (label, depth metrics dict), paper column order."""
    lines = ["| | " + " | ".join(title for _, title in DEPTH_COLUMNS) + " |",
             "|---|" + "---:|" * len(DEPTH_COLUMNS)]
    for label, metrics in rows:
        lines.append(f"| {label} | " + " | ".join(_fmt(metrics.get(key))
                                                  for key in DEPTH_KEYS) + " |")
    return "\n".join(lines)


#: Row titles of the alignment table (``synergy evaluate --align / --scale-correction``).
ALIGNMENT_TITLES = {"raw": "raw (model output)", "median": "median-aligned (per image)",
                    "ground_plane": "ground-plane scale"}


def alignment_markdown(result: dict) -> str:
    """The raw / median-aligned / ground-plane depth table, and what the ground plane did."""
    rows = [(ALIGNMENT_TITLES.get(name, name), metrics)
            for name, metrics in result["depth_alignment"].items()]
    lines = [depth_table_markdown(rows)]
    plane = result.get("ground_plane")
    if plane:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(plane["status_counts"].items()))
        lines += ["", f"Ground plane (camera height {plane['camera_height']:g} m, ground classes "
                      f"{', '.join(plane['ground_classes'])}): final scale "
                      f"{_fmt(plane['scale_final'])}"
                      f"{'' if plane['confident'] else ' (never confident: not corrected)'}, "
                      f"applied {_fmt(plane['scale_min'])}-{_fmt(plane['scale_max'])}; "
                      f"measurement accepted on {plane['frames_accepted']} of "
                      f"{plane['frames']} frames ({statuses})."]
    return "\n".join(lines)


def semantic_markdown(semantic: dict) -> str:
    """Markdown for semantic scores: pixel accuracy, mean accuracy, mIoU and per-class IoU."""
    lines = ["| pixel acc | mean acc | mIoU |", "|---:|---:|---:|",
             f"| {_fmt(semantic.get('pixel_acc'))} | {_fmt(semantic.get('mean_acc'))} | "
             f"{_fmt(semantic.get('miou'))} |"]
    per_class = semantic.get("per_class_iou") or {}
    if per_class:
        lines += ["", "| class | IoU |", "|---|---:|"]
        lines += [f"| {name} | {_fmt(iou)} |" for name, iou in per_class.items()]
    return "\n".join(lines)


def result_markdown(result: dict, images: Sequence[tuple[str, str]] = ()) -> str:
    """Render the result dict of ``synergy evaluate`` as a markdown report.

    ``images`` lists (caption, relative path) pairs to embed below the tables.
    """
    lines = [f"# Evaluation of `{result['bag']}`", ""]
    status = result.get("status", "complete")
    if status != "complete":
        lines += [f"**Partial result: {status}**", ""]
    topics = ", ".join(f"{k} `{v}`" for k, v in result.get("topics", {}).items() if v)
    model = (f" (model `{result['model']}`, backend {result.get('backend')})"
             if result.get("model") else "")
    lines += [f"- mode: {result['mode']}{model}",
              f"- topics: {topics}",
              f"- frames scored: {result['frames']} "
              f"({result.get('fps', 0):.1f} frames/s over {result.get('seconds', 0):.1f} s)",
              f"- matching: {result['matching_summary']}",
              f"- prediction resized to the ground truth's size: {result.get('resize_note')}",
              ""]
    if result.get("depth"):
        lines += ["## Depth (mean over images)", "",
                  depth_table_markdown([("all", result["depth"])]), "",
                  f"Valid ground-truth pixels with a valid prediction: "
                  f"{_fmt(result['depth'].get('coverage'))}", ""]
    if result.get("depth_alignment"):
        lines += ["## Depth: raw, median-aligned and ground-plane corrected", "",
                  alignment_markdown(result), ""]
    if result.get("depth_ranges"):
        lines += ["## Depth by range (paper Tables 4-7 layout)", "",
                  depth_table_markdown([(row["range"], row) for row in result["depth_ranges"]]),
                  ""]
    if result.get("semantic"):
        lines += ["## Semantic labels", "", semantic_markdown(result["semantic"]), ""]
    if images:
        lines += ["## Images", ""]
        lines += [f"![{caption}]({path})" for caption, path in images]
        lines.append("")
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in result["notes"]] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Per-frame CSV
# ---------------------------------------------------------------------------------------------
class FrameCsv:
    """Per-frame metrics written row by row (text kept in memory: ~100 bytes per frame).

    ``close()`` writes the file atomically; call it on success and on partial results alike.
    """

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self._buffer = io.StringIO()
        self._writer = csv.DictWriter(self._buffer, fieldnames=self.columns,
                                      extrasaction="ignore", lineterminator="\n")
        self._writer.writeheader()
        self.rows = 0

    def write(self, row: dict) -> None:
        """Append one frame's values (missing keys stay empty; floats to 6 digits)."""
        self._writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                               for k, v in row.items()})
        self.rows += 1

    def close(self) -> Path:
        """Write the CSV file; returns its path."""
        atomic_write_text(self.path, self._buffer.getvalue())
        return self.path


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib optional)
# ---------------------------------------------------------------------------------------------
def matplotlib_available() -> bool:
    """True when matplotlib can be imported (plots are skipped otherwise)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(out_dir: str | Path, times_s: Sequence[float], frame_metrics: dict,
                bin_edges_m: np.ndarray, bin_abs_rel: np.ndarray,
                bin_rmse: np.ndarray) -> list[Path]:
    """Write ``error_over_time.png`` and ``error_vs_range.png`` with matplotlib (Agg).

    Args:
        out_dir: folder for the PNGs.
        times_s: (F,) frame times in seconds since the first frame.
        frame_metrics: metric name -> (F,) per-frame values (e.g. abs_rel, rmse).
        bin_edges_m: (B + 1,) ground-truth depth bin edges in metres.
        bin_abs_rel, bin_rmse: (B,) mean abs rel error and RMSE (m) per bin (NaN when empty).

    Returns the written paths; raises ImportError when matplotlib is missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, axes = plt.subplots(len(frame_metrics), 1, figsize=(8, 2.2 * len(frame_metrics)),
                             sharex=True, squeeze=False)
    for axis, (name, values) in zip(axes[:, 0], frame_metrics.items()):
        axis.plot(times_s, values, ".-", linewidth=1, markersize=3)
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("time since first frame (s)")
    fig.suptitle("Per-frame depth error")
    written.append(_save_figure(fig, out_dir / "error_over_time.png"))
    plt.close(fig)

    centres = 0.5 * (bin_edges_m[:-1] + bin_edges_m[1:])
    fig, axis = plt.subplots(figsize=(8, 3.5))
    axis.plot(centres, bin_abs_rel, "o-", label="abs rel")
    axis.set_xlabel("ground-truth depth (m)")
    axis.set_ylabel("abs rel")
    twin = axis.twinx()
    twin.plot(centres, bin_rmse, "s--", color="tab:red", label="rmse (m)")
    twin.set_ylabel("rmse (m)")
    axis.grid(True, alpha=0.3)
    fig.legend(loc="upper left")
    fig.suptitle("Depth error vs range")
    written.append(_save_figure(fig, out_dir / "error_vs_range.png"))
    plt.close(fig)
    return written


def _save_figure(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path
