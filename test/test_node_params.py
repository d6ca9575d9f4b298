"""Node parameters, config/synergy.yaml, the launch file's arguments and the rviz config."""
import ast
from pathlib import Path

import pytest
import yaml

from synergy_ros.ros import params

# ROS 2 message classes / serialization: run on Kilted and Jazzy (make test)
pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]


def test_every_parameter_has_a_description_and_numbers_have_ranges():
    pytest.importorskip("rcl_interfaces.msg")
    for spec in params.PARAMS:
        desc = params.descriptor(spec)
        assert len(spec.description) > 10, spec.name
        assert desc.description == spec.description
        if isinstance(spec.default, float):
            assert desc.floating_point_range, spec.name
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
            assert desc.integer_range, spec.name
        assert params.check_value(spec.name, spec.default) is None or spec.name == "model"


@pytest.mark.parametrize("name,value,reason", [
    ("backend", "cuda", "backend must be one of"), ("device", "gpu0", "device must be"),
    ("cloud_decimation", 0, "in [1, 16]"), ("max_range", float("nan"), "finite"),
    ("semantic_blend", 1.5, "in [0.0, 1.0]"), ("input_width", 8, ">= 16"),
    ("depth_encoding", "16SC1", "32FC1, 16UC1"), ("qos_reliability", "fast", "best_effort"),
])
def test_check_value_gives_the_reason(name, value, reason):
    assert reason in params.check_value(name, value)


@pytest.mark.parametrize("name,value", [("device", "cuda:1"), ("input_width", 0),
                                        ("max_range", 0.1), ("queue_policy", "drop_new")])
def test_check_value_accepts_valid_values(name, value):
    assert params.check_value(name, value) is None


def test_config_yaml_sets_every_parameter_with_its_declared_type():
    data = yaml.safe_load((ROOT / "config" / "synergy.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == set(params.SPECS)
    for name, value in values.items():
        spec = params.SPECS[name]
        assert type(value) is type(spec.default), (name, value)  # rclpy types are strict
        if name != "model":
            assert params.check_value(name, value) is None, name


def test_launch_file_declares_the_documented_arguments():
    tree = ast.parse((ROOT / "launch" / "synergy.launch.py").read_text())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") ==
                "DeclareLaunchArgument"}
    assert declared == {"image", "camera_info", "namespace", "params_file", "model",
                        "backend", "rviz"}


def test_rviz_config_shows_rgb_cloud_depth_and_semantics():
    data = yaml.safe_load((ROOT / "config" / "synergy.rviz").read_text())
    clouds = {d["Topic"]["Value"]: d for d in data["Visualization Manager"]["Displays"]
              if d["Class"] == "rviz_default_plugins/PointCloud2"}
    assert set(clouds) == {"/synergy/points", "/synergy/obstacles"}
    assert clouds["/synergy/points"]["Color Transformer"] == "RGB8"
    assert clouds["/synergy/points"]["Enabled"] and not clouds["/synergy/obstacles"]["Enabled"]
    for cloud in clouds.values():
        assert cloud["Topic"]["Reliability Policy"] == "Reliable"
    images = [d["Topic"]["Value"] for d in data["Visualization Manager"]["Displays"]
              if d["Class"] == "rviz_default_plugins/Image"]
    assert images == ["/synergy/depth", "/synergy/semantic_color"]


def test_docs_list_every_parameter():
    text = (ROOT / "docs" / "node.md").read_text()
    missing = [spec.name for spec in params.PARAMS if f"`{spec.name}`" not in text]
    assert not missing, f"docs/node.md lacks {missing}"
