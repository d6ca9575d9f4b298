"""`synergy evaluate` model mode: a real (untrained) model over a real synthetic bag."""
import json

import numpy as np
import pytest

from synergy_ros.bags.bagio import BagWriter, bag_topics, iter_messages
from synergy_ros.cli import main as cli_main
from synergy_ros.core.errors import SynergyError
from synergy_ros.data.synthetic import write_synthetic_bag
from synergy_ros.demo_pipeline import build_untrained_model
from synergy_ros.evaluation.evaluator import EvaluateOptions, evaluate
from synergy_ros.evaluation.metrics import depth_metrics
from synergy_ros.ros.conversions import image_to_rgb, rgb_to_compressed
from synergy_ros.ros.decoding import depth_from_image, resize_to
from synergy_ros.runtime import load_predictor

FRAMES = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_mode")
    model = build_untrained_model(root / "tiny.pt", input_size=(32, 48), seed=3)
    bag = root / "scene"
    write_synthetic_bag(bag, FRAMES, height=48, width=64, seed=5)
    return root, model, bag


def _options(bag, model, **kw):
    base = dict(bag=bag, gt_topic="/camera/depth_gt", image_topic="/camera/image_raw",
                semantic_gt_topic="/camera/semantic_gt", model=model and str(model),
                backend="torch", device="cpu", progress=False)
    base.update(kw)
    return EvaluateOptions(**base)


def _expected_abs_rel(bag, model):
    """Mean per-image abs_rel of the predictor's own output, computed independently."""
    predictor = load_predictor(model, backend="torch", device="cpu")
    images = [image_to_rgb(m.message) for m in iter_messages(bag, ["/camera/image_raw"])]
    gts = [depth_from_image(m.message) for m in iter_messages(bag, ["/camera/depth_gt"])]
    values = [depth_metrics(resize_to(predictor.predict(rgb).depth, gt.shape, nearest=False),
                            gt)["abs_rel"] for rgb, gt in zip(images, gts)]
    return float(np.mean(values))


def test_model_mode_scores_the_predictor_and_writes_an_output_bag(setup):
    root, model, bag = setup
    out_bag = root / "predictions"
    result, written = evaluate(_options(bag, model, output_bag=out_bag,
                                        camera_info_topic="/camera/camera_info",
                                        json_path=root / "m.json"))
    assert result["status"] == "complete" and result["frames"] == FRAMES
    assert result["mode"] == "model" and result["backend"] == "torch"
    assert result["depth"]["abs_rel"] == pytest.approx(_expected_abs_rel(bag, model), rel=1e-5)
    assert 0 <= result["semantic"]["pixel_acc"] <= 1
    assert json.loads((root / "m.json").read_text())["frames"] == FRAMES
    assert bag_topics(out_bag) == {
        "/synergy/depth": "sensor_msgs/msg/Image",
        "/synergy/semantic": "sensor_msgs/msg/Image",
        "/synergy/semantic_color": "sensor_msgs/msg/Image",
        "/synergy/depth/camera_info": "sensor_msgs/msg/CameraInfo",
        "/synergy/camera_info": "sensor_msgs/msg/CameraInfo",  # beside the images, as the node
        "/synergy/points": "sensor_msgs/msg/PointCloud2",
        "/synergy/obstacles": "sensor_msgs/msg/PointCloud2",  # the model's label set has
        "/synergy/ground": "sensor_msgs/msg/PointCloud2"}     # default ground / ignored roles
    image_stamps = [m.message.header.stamp for m in iter_messages(bag, ["/camera/image_raw"])]
    for topic in bag_topics(out_bag):
        msgs = [m.message for m in iter_messages(out_bag, [topic])]
        assert [m.header.stamp for m in msgs] == image_stamps, topic
        assert msgs[0].header.frame_id == "camera_optical_frame"
    cloud = next(m.message for m in iter_messages(out_bag, ["/synergy/points"]))
    depth = next(m.message for m in iter_messages(out_bag, ["/synergy/depth"]))
    assert (cloud.height, cloud.width) == (depth.height, depth.width)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label"]
    assert written["output_bag"] == out_bag


def test_compressed_images_score_like_raw_png(setup):
    root, model, bag = setup
    compressed = root / "compressed"
    with BagWriter(compressed) as writer:
        for m in iter_messages(bag):
            msg = m.message
            if m.topic == "/camera/image_raw":
                msg = rgb_to_compressed(image_to_rgb(msg), "png", header=msg.header)
                writer.write("/camera/image_raw/compressed", msg, m.log_time_ns)
            else:
                writer.write(m.topic, msg, m.log_time_ns)
    raw, _ = evaluate(_options(bag, model))
    packed, _ = evaluate(_options(compressed, model,
                                  image_topic="/camera/image_raw/compressed"))
    assert packed["frames"] == FRAMES
    assert packed["depth"]["rmse"] == pytest.approx(raw["depth"]["rmse"], rel=1e-6)


def test_model_mode_bad_input(setup, capsys):
    root, model, bag = setup
    with pytest.raises(SynergyError, match="needs --image-topic"):
        evaluate(_options(bag, model, image_topic=None))
    with pytest.raises(SynergyError, match="not both"):
        evaluate(_options(bag, model, pred_topic="/camera/depth_gt"))
    with pytest.raises(SynergyError, match="--output-bag writes a model's predictions"):
        evaluate(_options(bag, None, image_topic=None, pred_topic="/camera/depth_gt",
                          output_bag=root / "x"))
    code = cli_main(["evaluate", "--bag", str(bag), "--gt-topic", "/camera/depth_gt",
                     "--image-topic", "/camera/image_raw", "--model", str(root / "none.pt")])
    assert code == 1 and "does not exist" in capsys.readouterr().err
