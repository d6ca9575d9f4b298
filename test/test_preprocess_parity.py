"""Training, validation and inference feed the network the same input.

One camera frame goes through the trainer's validation dataset (a real folder dataset built
from a training config with ``augment: {mean, std}``) and through the predictors that the node,
``synergy evaluate`` and the export parity check use (torch and onnxruntime, both from the model
file the trainer's metadata describes); the TensorRT path (engine inference and the INT8
calibrator) uses the same :class:`Preprocessor`. The network inputs must be identical.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import IMAGENET_MEAN, IMAGENET_STD, ModelMeta, save_model_file
from synergy_ros.learning.batches import training_normalisation, with_normalisation
from synergy_ros.learning.config import load_config
from synergy_ros.learning.trainer import Trainer
from synergy_ros.runtime import load_predictor
from synergy_ros.runtime.preprocess import Preprocessor, normalisation, normalise_rgb

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "config" / "train_synthetic_demo.yaml")
MEAN, STD = [0.3, 0.4, 0.5], [0.2, 0.25, 0.3]
SIZE = (48, 64)  # model input (h, w); the frame is larger, so every path shrinks it


@pytest.fixture(autouse=True)
def _keep_thread_count():
    """The trainer applies config ``threads`` process-wide; give other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def camera_frame(height=150, width=200, seed=4):
    """A textured frame: fine detail is where area and bilinear shrinking differ."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], -1)
    noise = rng.integers(0, 60, (height, width, 3))
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(trainer, model file, frame): a Trainer on a one-frame folder dataset with custom
    mean/std, and its model file written with the trainer's metadata."""
    tmp = tmp_path_factory.mktemp("parity")
    frame = camera_frame()
    (tmp / "data" / "rgb").mkdir(parents=True)
    (tmp / "data" / "depth").mkdir()
    cv2.imwrite(str(tmp / "data" / "rgb" / "f0.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    np.save(tmp / "data" / "depth" / "f0.npy", np.full(frame.shape[:2], 2.0, np.float32))
    spec = f"{{type: folder, root: {tmp / 'data'}}}"
    train = (f"data.train=[{{type: folder, root: {tmp / 'data'}, "
             f"augment: {{mean: {MEAN}, std: {STD}, jitter: 0}}}}]")
    config = load_config(DEMO, [f"data.input_size={list(SIZE)}", "data.batch_size=1",
                                "data.num_workers=0", train, f"data.val={spec}",
                                "train.progress=false", "threads=1"])
    trainer = Trainer(config, tmp / "run")
    model = tmp / "model.pt"
    save_model_file(model, trainer.model.state_dict(), trainer.meta())
    return trainer, model, frame


def test_model_metadata_carries_the_training_normalisation(trained):
    """augment mean/std reach ModelMeta (inference used to fall back to ImageNet)."""
    trainer, _, _ = trained
    meta = trainer.meta()
    assert meta.mean == pytest.approx(MEAN) and meta.std == pytest.approx(STD)


def test_validation_and_every_runtime_feed_identical_inputs(trained, tmp_path):
    """Validation sample == torch / onnxruntime predictor input == TensorRT's Preprocessor
    input, bit for bit; and it is not what a bilinear shrink would give."""
    trainer, model, frame = trained
    validation = trainer.val_set[0]["image"].numpy()
    assert validation.shape == (3, *SIZE)
    for backend in ("torch", "onnxruntime"):
        with load_predictor(model, backend=backend, device="cpu",
                            engine_cache_dir=tmp_path) as predictor:
            batch, sizes = predictor._pre([frame])
        assert sizes == [frame.shape[:2]]
        np.testing.assert_array_equal(batch[0], validation, err_msg=backend)
    meta = trainer.meta()  # the TensorRT predictor and INT8 calibrator build exactly this
    np.testing.assert_array_equal(Preprocessor(SIZE, meta.mean, meta.std)([frame])[0][0],
                                  validation)
    bilinear = cv2.resize(frame, SIZE[::-1], interpolation=cv2.INTER_LINEAR)
    old_runtime = normalise_rgb(bilinear, *normalisation(MEAN, STD))
    assert np.abs(old_runtime - validation).mean() > 0.01  # the paths used to differ


def test_old_model_files_without_normalisation_load_with_imagenet():
    """Metadata written before mean/std were recorded still loads, with ImageNet values."""
    meta = ModelMeta(network={}, class_names=["a"], palette=[(1, 2, 3)])
    data = meta.to_dict()
    del data["mean"], data["std"]
    loaded = ModelMeta.from_dict(data)
    assert loaded.mean == IMAGENET_MEAN and loaded.std == IMAGENET_STD


def test_normalisation_must_be_one_per_model():
    """Training datasets must agree; validation inherits it and may not contradict it."""
    one = {"type": "synthetic", "augment": {"mean": MEAN, "std": STD}}
    assert training_normalisation([one, dict(one)]) == (tuple(MEAN), tuple(STD))
    assert training_normalisation([{"type": "synthetic"}]) == (IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(SynergyError, match="normalise differently.*data.train.1."):
        training_normalisation([one, {"type": "synthetic"}])
    val = with_normalisation({"type": "synthetic", "augment": {"flip": False}}, MEAN, STD,
                             "data.val")
    assert val["augment"] == {"flip": False, "mean": MEAN, "std": STD}
    with pytest.raises(SynergyError, match="data.val sets augment mean"):
        with_normalisation({"type": "synthetic", "augment": {"std": [1, 1, 1]}}, MEAN, STD,
                           "data.val")
    with pytest.raises(SynergyError, match="3 numbers each"):
        training_normalisation([{"augment": {"mean": [0.5, 0.5]}}])
