"""Model files (synergy_ros.core.modelfile): round trip, metadata validation, bad files."""
import json

import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import (IMAGENET_MEAN, MODEL_FORMAT, ModelMeta, load_model_file,
                                        save_model_file)


class Evil:
    """A class that weights_only unpickling must refuse to instantiate."""


def _meta(**changes):
    fields = dict(network={"encoder": "resnet18", "num_classes": 2}, class_names=["a", "b"],
                  palette=[(1, 2, 3), (4, 5, 6)], input_size=(48, 64), max_depth=20.0,
                  extra={"trained_on": "synthetic"})
    fields.update(changes)
    return ModelMeta(**fields)


def test_round_trip_keeps_weights_meta_and_extras(tmp_path):
    """Weights, metadata and extra keys come back exactly; meta is a ModelMeta."""
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    save_model_file(tmp_path / "m.pt", state, _meta(), step=7)
    payload = load_model_file(tmp_path / "m.pt")
    assert isinstance(payload["meta"], ModelMeta) and payload["meta"] == _meta()
    assert torch.equal(payload["state_dict"]["w"], state["w"]) and payload["step"] == 7
    assert payload["meta"].num_classes == 2 and payload["meta"].mean == IMAGENET_MEAN


def test_meta_json_round_trip():
    """to_json/from_json preserve every field (tuples stay tuples)."""
    meta = _meta()
    again = ModelMeta.from_json(meta.to_json())
    assert again == meta and isinstance(again.input_size, tuple)
    assert json.loads(meta.to_json())["palette"] == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("changes,message", [
    ({"input_size": (0, 64)}, "input_size"),
    ({"std": (1.0, 0.0, 1.0)}, "std"),
    ({"palette": [(0, 0, 0)]}, "palette has 1 colours for 2 classes"),
    ({"max_depth": 0.0}, "max_depth"),
])
def test_invalid_meta_is_rejected(changes, message):
    """Inconsistent metadata raises SynergyError naming the field."""
    with pytest.raises(SynergyError, match=message):
        _meta(**changes)


def test_meta_from_dict_errors():
    """Missing required keys and bad JSON name their source and the fix."""
    with pytest.raises(SynergyError, match="x.onnx: metadata lacks \\['palette'\\].*re-export"):
        ModelMeta.from_dict({"network": {}, "class_names": []}, source="x.onnx")
    with pytest.raises(SynergyError, match="not valid JSON"):
        ModelMeta.from_json("{", source="x.onnx")
    with pytest.raises(SynergyError, match="not a dict"):
        ModelMeta.from_dict([1, 2])


def test_missing_truncated_and_foreign_files(tmp_path):
    """Each bad file gives a SynergyError naming it, never an unpickling traceback."""
    with pytest.raises(SynergyError, match="does not exist"):
        load_model_file(tmp_path / "none.pt")
    save_model_file(tmp_path / "m.pt", {"w": torch.zeros(1000)}, _meta())
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(SynergyError, match="cut.pt.*truncated"):
        load_model_file(tmp_path / "cut.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(SynergyError, match="plain.pt is not a synergy_ros model file"):
        load_model_file(tmp_path / "plain.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(SynergyError, match="text.pt"):
        load_model_file(tmp_path / "text.pt")


def test_newer_format_version_asks_to_upgrade(tmp_path):
    """A file from a newer synergy_ros says to upgrade."""
    torch.save({"format": MODEL_FORMAT, "format_version": 99, "meta": _meta().to_dict(),
                "state_dict": {}}, tmp_path / "new.pt")
    with pytest.raises(SynergyError, match="newer.*upgrade"):
        load_model_file(tmp_path / "new.pt")


def test_weights_only_refuses_pickled_code(tmp_path):
    """Safe loading: a file carrying an arbitrary Python object is refused as unreadable."""
    torch.save({"format": MODEL_FORMAT, "format_version": 1, "meta": _meta().to_dict(),
                "state_dict": {}, "obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(SynergyError, match="evil.pt is not a readable"):
        load_model_file(tmp_path / "evil.pt")


def test_load_model_meta_reads_metadata_only(tmp_path):
    """load_model_meta returns the same ModelMeta as a full load, and rejects bad files."""
    import torch

    from synergy_ros.core.errors import SynergyError
    from synergy_ros.core.modelfile import (ModelMeta, load_model_file, load_model_meta,
                                            save_model_file)

    meta = ModelMeta(network={"encoder": "resnet18"}, class_names=["a", "b"],
                     palette=[(1, 2, 3), (4, 5, 6)], input_size=(48, 64))
    path = tmp_path / "m.pt"
    save_model_file(path, {"w": torch.arange(6.0)}, meta)
    assert load_model_meta(path) == load_model_file(path)["meta"] == meta
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SynergyError, match="truncated"):
        load_model_meta(path)
