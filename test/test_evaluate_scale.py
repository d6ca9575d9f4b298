"""`synergy evaluate --align median / --scale-correction ground_plane` on a real synthetic bag.

The bundled demo model runs over a rosbag2 of a synthetic room whose camera height is known;
a predictor wrapper injects a known depth scale error (x0.7, x1.4) the way a camera height,
lens or scene type unlike the training domain would.
"""
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from synergy_ros.cli import main as cli_main
from synergy_ros.core.errors import SynergyError
from synergy_ros.data.synthetic import FLOOR, WALL, build_scene, write_synthetic_bag
from synergy_ros.evaluation.evaluator import EvaluateOptions, Evaluator, evaluate

DEMO_MODEL = Path(__file__).resolve().parents[1] / "models" / "synergy_demo_r18.pt"
SEED = 7  # a room
FRAMES = 12


class ScaledPredictor:
    """A Predictor whose depth is multiplied by ``factor``; frames in ``hide_ground`` (indices)
    get their floor labels replaced by wall (no visible ground)."""

    def __init__(self, predictor, factor: float, hide_ground=()) -> None:
        self.predictor, self.factor, self.hide_ground = predictor, factor, set(hide_ground)
        self.meta, self.backend_name = predictor.meta, predictor.backend_name
        self.frames = 0

    def predict(self, rgb):
        prediction = self.predictor.predict(rgb)
        labels = prediction.labels
        if self.frames in self.hide_ground:
            labels = np.where(labels == FLOOR, WALL, labels).astype(labels.dtype)
        self.frames += 1
        return dataclasses.replace(prediction, depth=prediction.depth * np.float32(self.factor),
                                   labels=labels)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "room"
    write_synthetic_bag(path, FRAMES, height=120, width=160, seed=SEED)
    return path


def _options(bag, **kw):
    base = dict(bag=bag, gt_topic="/camera/depth_gt", image_topic="/camera/image_raw",
                camera_info_topic="/camera/camera_info", model=str(DEMO_MODEL),
                backend="torch", device="cpu", progress=False, align="median",
                scale_correction="ground_plane", camera_height=build_scene(SEED).camera_height)
    base.update(kw)
    return EvaluateOptions(**base)


def _run(options, factor=1.0, hide_ground=()):
    evaluator = Evaluator(options)
    evaluator.predictor = ScaledPredictor(evaluator.predictor, factor, hide_ground)
    evaluator.run()
    evaluator.write_outputs()
    return evaluator.result


@pytest.fixture(scope="module")
def uninjected(bag, tmp_path_factory):
    csv_path = tmp_path_factory.mktemp("csv") / "frames.csv"
    return _run(_options(bag, csv_path=csv_path)), csv_path


@pytest.mark.parametrize("factor", [0.7, 1.4])
def test_ground_plane_scale_undoes_an_injected_factor(bag, uninjected, factor, tmp_path):
    base, base_csv = uninjected
    result = _run(_options(bag, csv_path=tmp_path / "frames.csv"), factor)
    raw_1 = base["depth_alignment"]["raw"]["abs_rel"]
    raw_k = result["depth_alignment"]["raw"]["abs_rel"]
    corrected_k = result["depth_alignment"]["ground_plane"]["abs_rel"]
    assert abs(raw_k / raw_1 - 1) > 0.3  # the injected factor shows in the raw figures
    assert corrected_k == pytest.approx(base["depth_alignment"]["ground_plane"]["abs_rel"],
                                        rel=0.10)
    assert corrected_k <= 1.10 * raw_1  # back within 10 % of the uninjected model (here below)
    # the estimate after 10 frames is the inverse factor times the model's own scale
    rows = list(csv.DictReader(tmp_path.joinpath("frames.csv").open()))
    base_rows = list(csv.DictReader(base_csv.open()))
    for row, base_row in zip(rows[9:], base_rows[9:]):
        ratio = float(row["scale_ground_plane"]) / float(base_row["scale_ground_plane"])
        assert ratio == pytest.approx(1.0 / factor, rel=0.03)
    plane = result["ground_plane"]
    assert plane["frames_accepted"] == FRAMES and plane["confident"]
    # median alignment is scale invariant by construction
    assert result["depth_alignment"]["median"]["abs_rel"] == pytest.approx(
        base["depth_alignment"]["median"]["abs_rel"], rel=1e-3)


def test_frames_without_ground_keep_the_last_scale(bag, tmp_path):
    csv_path = tmp_path / "frames.csv"
    result = _run(_options(bag, csv_path=csv_path), 1.4, hide_ground={5, 6, 7})
    rows = list(csv.DictReader(csv_path.open()))
    assert [row["ground_plane_status"] for row in rows[5:8]] == ["no_ground"] * 3
    assert {row["scale_ground_plane"] for row in rows[4:8]} == {rows[4]["scale_ground_plane"]}
    assert rows[8]["ground_plane_status"] == "ok"
    assert result["ground_plane"]["status_counts"] == {"ok": FRAMES - 3, "no_ground": 3}


def test_a_tenfold_camera_height_is_refused(bag):
    options = _options(bag, camera_height=10 * build_scene(SEED).camera_height)
    result = _run(options)
    plane = result["ground_plane"]
    assert plane["status_counts"] == {"out_of_bounds": FRAMES}
    assert not plane["confident"] and plane["scale_max"] == plane["scale_min"] == 1.0
    aligned = result["depth_alignment"]
    assert aligned["ground_plane"]["abs_rel"] == pytest.approx(aligned["raw"]["abs_rel"])


def test_cli_reports_raw_median_and_ground_plane_side_by_side(bag, tmp_path, capsys):
    code = cli_main(["evaluate", "--bag", str(bag), "--image-topic", "/camera/image_raw",
                     "--gt-topic", "/camera/depth_gt", "--camera-info-topic",
                     "/camera/camera_info", "--model", str(DEMO_MODEL), "--backend", "torch",
                     "--align", "median", "--scale-correction", "ground_plane",
                     "--camera-height", f"{build_scene(SEED).camera_height:.3f}",
                     "--max-frames", "4", "--no-progress", "--json", str(tmp_path / "m.json"),
                     "--output-bag", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    table = out.split("## Depth: raw, median-aligned and ground-plane corrected")[1]
    for title in ("| raw (model output) |", "| median-aligned (per image) |",
                  "| ground-plane scale |", "Ground plane (camera height 1.2 m"):
        assert title in table
    result = json.loads((tmp_path / "m.json").read_text())
    assert set(result["depth_alignment"]) == {"raw", "median", "ground_plane"}
    assert result["ground_plane"]["ground_classes"] == ["floor"]


def test_output_bag_carries_the_corrected_depth(bag, tmp_path):
    from synergy_ros.bags.bagio import iter_messages
    from synergy_ros.ros.decoding import depth_from_image

    out = {}
    for name, kw in (("raw", {"align": "none", "scale_correction": "off",
                              "camera_height": None}), ("plane", {})):
        evaluate(_options(bag, max_frames=2, output_bag=tmp_path / name, **kw))
        out[name] = [depth_from_image(m.message)
                     for m in iter_messages(tmp_path / name, ["/synergy/depth"])]
    result, _ = evaluate(_options(bag, max_frames=2))
    scale = result["ground_plane"]["last_state"]["scale"]
    np.testing.assert_allclose(out["plane"][1], out["raw"][1] * scale, rtol=1e-5)


@pytest.mark.parametrize("kw, match", [
    ({"camera_height": None}, "needs --camera-height"),
    ({"camera_info_topic": None}, "needs --camera-info-topic"),
    ({"camera_height": -1.0}, "--camera-height: camera_height must be > 0"),
    ({"scale_correction": "off"}, "belong to --scale-correction ground_plane"),
    ({"scale_correction": "off", "camera_height": None, "camera_pitch": 10.0},
     "--camera-pitch and --ground-classes belong to"),
    ({"camera_pitch": 95.0}, "--camera-pitch must be within -89..89"),
    ({"ground_classes": ("flor",)}, "unknown class name 'flor'"),
    ({"align": "mean"}, "--align must be one of none, median"),
    ({"model": None, "image_topic": None, "pred_topic": "/camera/depth_gt"},
     "runs in model mode"),
])
def test_scale_options_bad_input(bag, kw, match):
    with pytest.raises(SynergyError, match=match):
        evaluate(_options(bag, **kw))


SYNTHETIC = ["floor", "wall", "ceiling", "box", "cylinder", "sky"]


@pytest.mark.parametrize("class_names, ground, expected", [
    (["road_x", "car_x", "stuff"], ("road_x",), (("road_x",), ())),  # no built-in label set
    (SYNTHETIC, ("floor", "sky"), (("floor", "sky"), ())),  # sky: ignored by default
    (SYNTHETIC, None, (("floor",), ("ceiling", "sky"))),  # the label set's defaults
])
def test_output_bag_navigation_roles_follow_ground_classes(tmp_path, class_names, ground,
                                                           expected):
    """--ground-classes gives the output bag's obstacles / ground clouds their roles also for
    a model outside the built-in label sets (no ignored class then, as the scale's fit)."""
    from synergy_ros.evaluation.writers import EvaluationWriters

    notes = []
    writers = EvaluationWriters(_options(tmp_path / "in", output_bag=tmp_path / "out"), None,
                                notes)
    writers.open_output_bag([(0, 0, 0)] * len(class_names), len(class_names), class_names,
                            ground)
    try:
        roles = writers._bag_navigation.roles
        assert (roles.ground, roles.ignored) == expected and not notes
    finally:
        writers.close_bag()


def test_output_bag_without_resolvable_roles_says_why(tmp_path):
    from synergy_ros.evaluation.writers import EvaluationWriters

    notes = []
    writers = EvaluationWriters(_options(tmp_path / "in", output_bag=tmp_path / "out"), None,
                                notes)
    writers.open_output_bag([(0, 0, 0)] * 2, 2, ["grass", "tree"])
    try:
        assert writers._bag_navigation is None
        assert any("no obstacles / ground clouds" in note for note in notes)
    finally:
        writers.close_bag()
