"""package.xml, setup.py, the package version and the installed data files agree."""
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from unittest import mock

import setuptools

import synergy_ros

ROOT = Path(__file__).resolve().parents[1]


def _setup_kwargs() -> dict:
    """Execute setup.py with setuptools.setup captured, returning its keyword arguments."""
    captured = {}
    source = (ROOT / "setup.py").read_text()
    with mock.patch.object(setuptools, "setup", side_effect=lambda **kw: captured.update(kw)):
        import os
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            exec(compile(source, "setup.py", "exec"), {"__name__": "__main__"})
        finally:
            os.chdir(cwd)
    return captured


def test_versions_match():
    """package.xml, setup.py and synergy_ros.__version__ carry one version."""
    xml_version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    assert xml_version == _setup_kwargs()["version"] == synergy_ros.__version__


def test_package_xml_declares_required_dependencies():
    """The dependencies the foundation issue lists are declared in package.xml (format 3)."""
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "synergy_ros"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    test_deps = {e.text for e in root.findall("test_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs",
            "python3-numpy", "python3-opencv"} <= exec_deps
    assert {"ament_flake8", "ament_pep257", "python3-pytest"} <= test_deps
    assert root.find("export/build_type").text == "ament_python"


def test_every_share_file_is_installed():
    """Every launch/config/model file in the tree is listed in setup.py's data_files."""
    kwargs = _setup_kwargs()
    installed = {f for _, files in kwargs["data_files"] for f in files}
    on_disk = set()
    for pattern in ("launch/*.launch.py", "config/*.yaml", "config/*.rviz", "models/*"):
        on_disk |= {str(p.relative_to(ROOT)) for p in ROOT.glob(pattern) if p.is_file()}
    stray = {str(p.relative_to(ROOT)) for d in ("launch", "config") for p in (ROOT / d).glob("*")
             if p.is_file() and not re.search(r"(\.launch\.py|\.yaml|\.rviz)$", p.name)}
    assert not stray, f"files in launch/ or config/ that no data_files pattern installs: {stray}"
    assert on_disk <= installed, f"not installed: {sorted(on_disk - installed)}"
    assert "resource/synergy_ros" in installed and "package.xml" in installed


def test_console_scripts_and_script_dir():
    """The console scripts exist and install into lib/synergy_ros (for `ros2 run`)."""
    scripts = _setup_kwargs()["entry_points"]["console_scripts"]
    names = {s.split("=")[0].strip() for s in scripts}
    assert names == {"synergy", "synergy_node", "synergy_lifecycle_node"}
    cfg = (ROOT / "setup.cfg").read_text()
    assert "install_scripts=$base/lib/synergy_ros" in cfg
