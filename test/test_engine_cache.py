"""Engine/export cache: keys, sidecar validation, stale rebuilds, atomic writes, file locks.

Plain Python (no TensorRT): the cache stores opaque bytes, so it is tested here with real files
and two real processes racing for the same entry.
"""
import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.runtime.engine_cache import (EngineKey, cached_build, engine_cache_path,
                                              environment_problems, file_lock, file_sha256,
                                              io_problems, read_record, record_problems,
                                              sidecar_path)

KEY = {"source_sha256": "ab" * 32, "precision": "fp16"}


def _builder(payload: bytes, calls: list):
    def build():
        calls.append(1)
        return payload, {"note": "test"}
    return build


def engine_key(**changes):
    """A realistic engine key with optional field changes."""
    fields = dict(onnx_sha256="0" * 64, tensorrt_version="10.3.0", gpu_name="NVIDIA H100",
                  compute_capability="9.0", precision="fp16", input_shape=(1, 3, 240, 320))
    fields.update(changes)
    return EngineKey(**fields)


def test_engine_key_changes_with_every_field(tmp_path):
    """Each key field changes the digest and the cache file name."""
    base = engine_key()
    variants = [engine_key(onnx_sha256="1" * 64), engine_key(tensorrt_version="10.4.0"),
                engine_key(gpu_name="Orin"), engine_key(compute_capability="8.7"),
                engine_key(precision="int8"), engine_key(input_shape=(1, 3, 480, 640)),
                engine_key(precision="int8", calibration="ab" * 8)]
    digests = {base.digest()} | {v.digest() for v in variants}
    assert len(digests) == 8
    assert "calibration" not in base.to_dict()  # fp32/fp16 keep the file names they had
    path = engine_cache_path(tmp_path, tmp_path / "model.onnx", base)
    assert path.parent == tmp_path and path.name.startswith("model.fp16.")
    assert path.suffix == ".engine" and engine_key().digest() == base.digest()
    assert json.loads(json.dumps(base.to_dict()))["input_shape"] == [1, 3, 240, 320]


def test_build_once_then_reuse(tmp_path):
    """First call builds (artifact + sidecar with key and hash); second reuses it."""
    target, calls = tmp_path / "a.engine", []
    first = cached_build(target, KEY, _builder(b"engine-bytes", calls))
    assert first.built and target.read_bytes() == b"engine-bytes"
    record = read_record(target)
    assert record["key"] == KEY and record["sha256"] == file_sha256(target)
    assert record["note"] == "test" and record["size"] == 12
    second = cached_build(target, KEY, _builder(b"other", calls))
    assert not second.built and calls == [1] and target.read_bytes() == b"engine-bytes"


@pytest.mark.parametrize("damage", ["key", "truncate", "corrupt_sidecar", "no_sidecar",
                                    "same_size_edit"])
def test_stale_entries_are_rebuilt_with_a_warning(tmp_path, caplog, damage):
    """A changed key, truncated artifact, bad/missing sidecar or edited bytes -> rebuild."""
    target, calls = tmp_path / "a.engine", []
    cached_build(target, KEY, _builder(b"engine-bytes", calls))
    key = KEY
    if damage == "key":
        key = {**KEY, "precision": "fp32"}
    elif damage == "truncate":
        target.write_bytes(b"engine")
    elif damage == "corrupt_sidecar":
        sidecar_path(target).write_text("{not json")
    elif damage == "no_sidecar":
        sidecar_path(target).unlink()
    else:
        target.write_bytes(b"ENGINE-bytes")
    assert record_problems(target, read_record(target), key)
    caplog.set_level(logging.INFO, logger="synergy_ros")
    result = cached_build(target, key, _builder(b"rebuilt", calls))
    assert result.built and len(calls) == 2 and target.read_bytes() == b"rebuilt"
    assert "is stale, rebuilding" in caplog.text
    assert not record_problems(target, read_record(target), key)


def test_failed_build_leaves_previous_files(tmp_path):
    """A build that raises leaves the old artifact and sidecar untouched (atomic writes)."""
    target = tmp_path / "a.engine"
    cached_build(target, KEY, _builder(b"old", []))

    def broken():
        raise SynergyError("parser failed")

    with pytest.raises(SynergyError, match="parser failed"):
        cached_build(target, {**KEY, "precision": "int8"}, broken)
    assert target.read_bytes() == b"old" and read_record(target)["key"] == KEY
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


_RACER = textwrap.dedent("""
    import json, sys, time
    from synergy_ros.runtime.engine_cache import cached_build
    target, log = sys.argv[1], sys.argv[2]
    def build():
        with open(log, "a") as handle:
            handle.write("build\\n")
        time.sleep(1.5)
        return b"x" * 100000, {}
    result = cached_build(target, {"k": 1}, build)
    print(json.dumps({"built": result.built, "waited": result.waited_s,
                      "sha": result.record["sha256"]}))
""")


def test_two_processes_build_once(tmp_path):
    """Two real processes asking for the same entry at once: one builds, the other waits."""
    target, log = tmp_path / "race.engine", tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(target), str(log)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert log.read_text().count("build") == 1
    assert sorted(r["built"] for r in results) == [False, True]
    assert results[0]["sha"] == results[1]["sha"] == file_sha256(target)


def test_lock_times_out_with_a_clear_message(tmp_path):
    """A lock held by another process past the timeout names the lock file."""
    target = tmp_path / "held.engine"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from synergy_ros.runtime.engine_cache import file_lock
            with file_lock({str(target)!r}):
                print("locked", flush=True)
                time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(SynergyError, match="held.engine.lock"):
            with file_lock(target, timeout_s=0.5, poll_s=0.05):
                pass
        assert time.monotonic() - start < 10
    finally:
        holder.kill()
        holder.wait()
    with file_lock(target, timeout_s=5) as waited:  # released when its holder died
        assert waited < 5


def test_environment_problems_name_trt_version_and_gpu():
    """An engine built elsewhere lists which of TRT version / GPU / capability differ."""
    record = {"key": engine_key().to_dict()}
    assert environment_problems(record, "10.3.0", "NVIDIA H100", "9.0") == []
    problems = environment_problems(record, "10.5.0", "Orin", "8.7")
    assert len(problems) == 3 and "10.3.0" in problems[0] and "Orin" in problems[1]


def test_io_problems():
    """Names, modes, shapes (with -1 wildcards) and dtypes are compared."""
    expected = {"image": {"mode": "input", "shape": [1, 3, 64, 64], "dtype": "float32"},
                "labels": {"mode": "output", "shape": [1, -1, -1], "dtype": "int32"}}
    same = {"image": {"mode": "input", "shape": [1, 3, 64, 64], "dtype": "float32"},
            "labels": {"mode": "output", "shape": [1, 64, 64], "dtype": "int32"}}
    assert io_problems(same, expected) == []
    other = {"input": {"mode": "input", "shape": [1, 3, 32, 32], "dtype": "float32"},
             "labels": {"mode": "output", "shape": [1, 64, 64, 1], "dtype": "int64"}}
    problems = " ".join(io_problems(other, expected))
    assert "missing tensors ['image']" in problems and "shape" in problems
    assert "int64" in problems


def test_cache_path_helpers():
    """Sidecar and lock files sit beside the artifact."""
    assert sidecar_path("d/m.engine") == Path("d/m.engine.json")
