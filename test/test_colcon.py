"""`colcon build` installs the package the way ROS users get it (share/, lib/synergy_ros)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).parent / "colcon"
IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "runs",
                                "*.egg-info", "__pycache__", ".pytest_cache")


@pytest.mark.slow
@pytest.mark.skipif(not COLCON.exists(), reason="colcon not installed in this environment "
                    "(make test installs colcon-core, colcon-ros, colcon-python-setup-py)")
def test_colcon_build_installs_share_and_lib(tmp_path):
    """Build a copy of the package in a temporary workspace and check the install tree."""
    src = tmp_path / "src" / "synergy_ros"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    result = subprocess.run([str(COLCON), "build", "--base-paths", "src"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout}\n{result.stderr}"
    prefix = tmp_path / "install" / "synergy_ros"
    share = prefix / "share" / "synergy_ros"
    assert (share / "package.xml").is_file()
    for folder in ("launch", "config", "models"):
        assert (share / folder).is_dir(), f"share/synergy_ros/{folder} not installed"
        expected = sorted(p.name for p in (ROOT / folder).glob("*") if p.is_file())
        installed = sorted(p.name for p in (share / folder).glob("*"))
        assert installed == expected
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages"
            / "synergy_ros").is_file()
    node = prefix / "lib" / "synergy_ros" / "synergy_node"
    assert node.is_file() and node.stat().st_mode & 0o111
    assert (prefix / "lib" / "synergy_ros" / "synergy").is_file()
    assert (prefix / "lib" / "synergy_ros" / "synergy_lifecycle_node").is_file()
