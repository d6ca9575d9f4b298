"""Launch one synergy_node for several cameras (one model, batched inference).

ros2 launch synergy_ros multi_camera.launch.py cameras_file:=/path/to/cameras.yaml \
    [namespace:=synergy] [model:=/path/model.pt] [backend:=auto|torch|onnxruntime|tensorrt] \
    [params_file:=my.yaml]

`cameras_file` is a YAML list of {name, image, camera_info (optional)} (see
config/multi_camera.yaml): the node gets `cameras: [name, ...]` and, per camera, the remaps
NAME/image (and NAME/image/compressed) to the camera's image topic, NAME/camera_info only when
given (else it is read beside the image, image_transport's rule). Outputs appear under
/<namespace>/NAME/: depth, camera_info, depth/camera_info, semantic, semantic_color, points
(and /diagnostics: one status per camera). Per-camera parameters (NAME.fallback_fov,
NAME.publish_points, NAME.camera_height, NAME.camera_pitch) go in the params file.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from synergy_ros.ros.cameras_file import load_cameras_file, node_arguments

PACKAGE = "synergy_ros"


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the synergy_node serving every camera of the file."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("cameras_file",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "multi_camera.yaml"]),
                              description="YAML list of {name, image, camera_info "
                                          "(optional: default beside the image)}"),
        DeclareLaunchArgument("namespace", default_value="synergy",
                              description="namespace of the node and its output topics"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "synergy.yaml"]),
                              description="node parameters (YAML; per camera "
                                          "NAME.fallback_fov, NAME.publish_points, "
                                          "NAME.camera_height, NAME.camera_pitch)"),
        DeclareLaunchArgument("model",
                              default_value=PathJoinSubstitution([share, "models",
                                                                  "synergy_demo_r18.pt"]),
                              description="model file: .pt, .onnx or TensorRT .engine"),
        DeclareLaunchArgument("backend", default_value="auto",
                              description="auto, torch, onnxruntime or tensorrt"),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_synergy_node)])


def _synergy_node(context) -> list:
    """synergy_node with ``cameras`` and the per-camera remaps read from the cameras file."""
    entries = load_cameras_file(LaunchConfiguration("cameras_file").perform(context))
    parameters, remappings = node_arguments(entries)
    return [Node(
        package=PACKAGE, executable="synergy_node", name="synergy_node",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), parameters,
                    {"model": LaunchConfiguration("model"),
                     "backend": LaunchConfiguration("backend")}],
        remappings=remappings)]
