"""Install script for the synergy_ros ament_python package."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "synergy_ros"
VERSION = "0.1.0"  # keep in sync with package.xml and synergy_ros/__init__.py (tested)

setup(
    name=PACKAGE,
    version=VERSION,
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", sorted(glob("launch/*.launch.py"))),
        ("share/" + PACKAGE + "/config",
         sorted(glob("config/*.yaml")) + sorted(glob("config/*.rviz"))),
        ("share/" + PACKAGE + "/models", sorted(glob("models/*"))),
    ],
    python_requires=">=3.10",
    install_requires=[
        "setuptools",
        "numpy>=2.0",
        "torch>=2.2,<3",
        "opencv-python-headless>=4.8",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "rosbags>=0.10",
        "pyyaml>=6.0",
        "tqdm>=4.66",
        "h5py>=3.10",
    ],
    extras_require={
        "test": [
            "pytest>=8.0",
            "pytest-timeout>=2.2",
            "flake8>=7.0",
            "pydocstyle>=6.3",
            "mypy>=1.10",  # type-checks the TensorRT code; its stubs: see the Makefile
            "colcon-core>=0.15",
            "colcon-ros>=0.5",
            "colcon-python-setup-py>=0.2",
            "matplotlib>=3.8",
        ],
        "plots": ["matplotlib>=3.8"],
    },
    zip_safe=True,
    maintainer="synergy_ros developers",
    maintainer_email="synergy-ros@example.com",
    description="Monocular depth + semantics + point clouds for ROS 2 (synergy network)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "synergy = synergy_ros.cli:main",
            "synergy_node = synergy_ros.ros.node:main",
            "synergy_lifecycle_node = synergy_ros.ros.lifecycle:main",
        ],
    },
)
