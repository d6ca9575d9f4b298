"""Device strings -> CUDA indices, and which backends a machine really has (CPU-testable).

The TensorRT backend once called ``torch.cuda.set_device(torch.device("cuda"))``, which torch
refuses (no index) before touching the GPU; every backend now resolves device strings through
``synergy_ros.runtime.device``.
"""
import sys

import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.runtime import choose_backend
from synergy_ros.runtime.device import (DeviceSpec, check_cuda_index, cuda_index, module_installed,
                                        parse_device, torch_device)


@pytest.mark.parametrize("text,kind,index", [
    ("auto", "auto", None), ("cpu", "cpu", None), ("cuda", "cuda", 0), ("cuda:0", "cuda", 0),
    ("cuda:3", "cuda", 3), (" CUDA:1 ", "cuda", 1)])
def test_parse_device(text, kind, index):
    """auto, cpu, cuda (= cuda:0) and cuda:N parse; str() gives the canonical spelling."""
    spec = parse_device(text)
    assert spec == DeviceSpec(kind, index)
    assert str(spec) == (kind if index is None else f"cuda:{index}")


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cuda0", "cuda:-1", "", "mps"])
def test_parse_device_rejects_with_the_choices(text):
    """Anything else is a SynergyError listing the accepted spellings."""
    with pytest.raises(SynergyError, match="unknown device .*auto, cpu, cuda or cuda:N"):
        parse_device(text)


def test_cuda_index_gives_torch_an_index():
    """torch.cuda.set_device rejects an index-less torch.device (a pure-Python check, so it is
    seen on CPU torch); the index cuda_index() resolves is what torch accepts."""
    torch = pytest.importorskip("torch")
    from torch.cuda._utils import _get_device_index

    with pytest.raises(ValueError, match="specified index"):
        _get_device_index(torch.device("cuda"))  # what set_device(torch.device("cuda")) does
    assert cuda_index("cuda") == 0 and cuda_index("cuda:2") == 2
    assert _get_device_index(torch.device("cuda", cuda_index("cuda"))) == 0
    with pytest.raises(SynergyError, match="not a CUDA device"):
        cuda_index("cpu")


def test_check_cuda_index_names_the_problem():
    """A missing GPU or an index past the visible ones says what torch sees."""
    check_cuda_index(1, True, 2)
    with pytest.raises(SynergyError, match="sees no CUDA GPU.*--device cpu"):
        check_cuda_index(0, False, 0)
    with pytest.raises(SynergyError, match="cuda:2 requested but torch sees 2 CUDA GPU.*0..1"):
        check_cuda_index(2, True, 2)


def test_torch_device_on_this_machine():
    """cpu is cpu; auto and cuda follow what torch sees (CPU here: auto -> cpu, cuda refused)."""
    torch = pytest.importorskip("torch")
    assert torch_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert torch_device("auto") == torch.device("cuda", 0)
        assert torch_device("cuda").index == 0
    else:
        assert torch_device("auto") == torch.device("cpu")
        with pytest.raises(SynergyError, match="sees no CUDA GPU"):
            torch_device("cuda")


@pytest.fixture
def stubs_only_tensorrt(tmp_path, monkeypatch):
    """A 'tensorrt' folder holding only a .pyi, as `pip install tensorrt-stubs` leaves it."""
    folder = tmp_path / "site" / "tensorrt"
    folder.mkdir(parents=True)
    (folder / "__init__.pyi").write_text("__version__: str = '10.8.0.43'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")]:
        monkeypatch.delitem(sys.modules, name)
    return folder


def test_type_stubs_are_not_an_installed_tensorrt(stubs_only_tensorrt):
    """Python imports a stubs-only folder as an empty namespace package; it is not TensorRT:
    auto does not pick it and asking for it says TensorRT is not installed."""
    import importlib.util

    assert importlib.util.find_spec("tensorrt") is not None  # the trap
    assert not module_installed("tensorrt")
    assert module_installed("json") and not module_installed("no_such_module_here")
    pytest.importorskip("onnxruntime")
    backend, _, why = choose_backend("model.onnx", "auto", "auto")
    assert backend == "onnxruntime" and "tensorrt is not installed" in why
    from synergy_ros.runtime.tensorrt_backend import require_tensorrt

    with pytest.raises(SynergyError, match="TensorRT is not installed"):
        require_tensorrt()


def test_choose_backend_returns_canonical_devices():
    """cuda comes back as cuda:0, so every backend and log line names the same GPU."""
    assert choose_backend("model.pt", "torch", "cuda")[1] == "cuda:0"
    assert choose_backend("model.pt", "torch", "cuda:1")[1] == "cuda:1"
    assert choose_backend("model.pt", "torch", "cpu")[1] == "cpu"
