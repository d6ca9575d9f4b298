"""Launch synergy_node (and optionally rviz2) on a camera.

ros2 launch synergy_ros synergy.launch.py image:=/camera/color/image_raw \
    [namespace:=synergy] [model:=/path/model.pt] [backend:=auto|torch|onnxruntime|tensorrt] \
    [params_file:=my.yaml] [rviz:=true] [camera_info:=/other/camera_info]

The camera's CameraInfo is read beside its image (image_transport's rule:
/camera/color/image_raw -> /camera/color/camera_info) unless `camera_info` names another topic.
Outputs appear under the namespace: /<namespace>/depth, camera_info (beside the images, where
depth_image_proc and rviz2's DepthCloud look), depth/camera_info, semantic, semantic_color,
points (and /diagnostics). `model` and `backend` override the params file.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "synergy_ros"
RVIZ_TOPICS = ("points", "depth", "semantic_color")


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the synergy_node / rviz2 nodes."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/color/image_raw",
                              description="sensor_msgs/Image topic of the camera "
                                          "(its /compressed is used with use_compressed)"),
        DeclareLaunchArgument("camera_info", default_value="",
                              description="sensor_msgs/CameraInfo topic of that camera; empty "
                                          "= beside the image (image_transport's rule). "
                                          "Given, the node cannot publish its camera_info "
                                          "beside its images (the remap would catch it)"),
        DeclareLaunchArgument("namespace", default_value="synergy",
                              description="namespace of the node and its output topics"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "synergy.yaml"]),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("model",
                              default_value=PathJoinSubstitution([share, "models",
                                                                  "synergy_demo_r18.pt"]),
                              description="model file: .pt, .onnx or TensorRT .engine"),
        DeclareLaunchArgument("backend", default_value="auto",
                              description="auto, torch, onnxruntime or tensorrt"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="also open rviz2 with config/synergy.rviz"),
    ]
    rviz = Node(
        package="rviz2", executable="rviz2", name="synergy_rviz", output="screen",
        arguments=["-d", PathJoinSubstitution([share, "config", "synergy.rviz"])],
        # the .rviz file shows /synergy/<topic>; follow the namespace argument
        remappings=[(f"/synergy/{topic}", ["/", LaunchConfiguration("namespace"), f"/{topic}"])
                    for topic in RVIZ_TOPICS],
        condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription(arguments + [OpaqueFunction(function=_synergy_node), rviz])


def _synergy_node(context) -> list:
    """synergy_node with the camera remaps; ``camera_info`` remapped only when given.

    A remap rule matches fully qualified names, so ``camera_info:=...`` would also catch the
    node's own /<namespace>/camera_info output.
    """
    image = LaunchConfiguration("image").perform(context)
    camera_info = LaunchConfiguration("camera_info").perform(context)
    remappings = [("image", image), ("image/compressed", image + "/compressed")]
    if camera_info:
        remappings.append(("camera_info", camera_info))
    return [Node(
        package=PACKAGE, executable="synergy_node", name="synergy_node",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"),
                    {"model": LaunchConfiguration("model"),
                     "backend": LaunchConfiguration("backend")}],
        remappings=remappings)]
