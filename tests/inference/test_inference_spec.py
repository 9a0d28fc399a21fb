"""InputSpec: its dict round trip and the defaults of older records; the spec a run trains with is stored in its
checkpoints and packages and read back equal, in the run's memory layout; evaluation, prediction and overlays of
one run predict with that one spec."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dualseg.checkpoint import load_checkpoint
from dualseg.config import config_from_dict, load_config
from dualseg.data.build import make_dataset, prepare_data
from dualseg.deploy.package import save_package
from dualseg.deploy.predict import PredictOptions, predict_folder
from dualseg.engine.cases import predict_cases as evaluation_cases
from dualseg.engine.trainer import Trainer
from dualseg.inference.loading import load_inference_model
from dualseg.inference.predictor import predict_logits
from dualseg.inference.spec import DEFAULT_SPEC, InputSpec
from dualseg.metrics import logits_to_labels
from dualseg.metrics.conventions import get_convention
from dualseg.report.overlays import predict_cases as overlay_cases

CPU = torch.device("cpu")


def test_dict_round_trip_and_the_defaults_of_older_records() -> None:
    spec = InputSpec(normalize="imagenet", resize=(64, 96), input_scale=0.5, input_mode="bicubic", size_divisor=16,
                     roi_size=(128, 128), overlap=0.25, precision="fp32", channels_last=False)
    data = spec.to_dict()
    assert data["resize"] == [64, 96] and data["roi_size"] == [128, 128]
    assert json.loads(json.dumps(data)) == data and InputSpec.from_dict(data) == spec
    assert InputSpec.from_dict({}) == InputSpec() == DEFAULT_SPEC
    assert InputSpec().channels_last is True and InputSpec().memory_format == torch.channels_last  # old: NHWC
    # a package of an older dualseg: ``input`` without input_mode / channels_last, ``prediction`` beside it
    old = {"channels": 1, "normalize": "unit", "resize": [32, 32], "input_scale": 1.0, "roi_size": None,
           "overlap": 0.5, "precision": "auto"}
    assert InputSpec.from_dict(old, size_divisor=8) == InputSpec(normalize="unit", resize=(32, 32), size_divisor=8)
    with pytest.raises(TypeError, match="channels_last"):
        InputSpec.from_dict({"channels_last": "yes"})
    with pytest.raises(ValueError, match="two sizes"):
        InputSpec.from_dict({"resize": [1, 2, 3]})


def test_from_config() -> None:
    cfg = config_from_dict({
        "data": {"normalize": "unit", "resize": [64, 64], "sr": {"mode": "downsample", "scale": 4,
                                                                "interpolation": "bicubic"}},
        "eval": {"roi_size": [32, 32], "overlap": 0.25},
        "train": {"precision": "bf16", "channels_last": False},
    })
    assert InputSpec.from_config(cfg, 16) == InputSpec("unit", (64, 64), 0.25, "bicubic", 16, (32, 32), 0.25, "bf16",
                                                       False)
    assert InputSpec.from_config(config_from_dict({}), 1) == InputSpec()  # the config defaults are the spec's


def test_a_checkpoint_without_a_stored_spec_gets_that_of_its_config(make_run, tmp_path) -> None:
    config = {"data": {"resize": [48, 48], "normalize": "unit"}, "train": {"precision": "fp32",
                                                                          "channels_last": False}}
    run = make_run(tmp_path / "run", "unet", {"channels": [4, 8, 16]}, config=config)
    assert "input" not in load_checkpoint(run / "checkpoints" / "best.pt")
    loaded = load_inference_model(run)
    assert loaded.spec == InputSpec.from_config(loaded.config, loaded.model.size_divisor)
    assert loaded.spec.resize == (48, 48) and loaded.spec.normalize == "unit" and not loaded.spec.channels_last


def _conv_weight(model: torch.nn.Module) -> torch.Tensor:
    return next(p for p in model.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[-1] > 1)


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> dict[bool, object]:
    """Two tiny runs of one training step on ISBI 2012 resized to 64x64, in NCHW and in NHWC."""
    runs = {}
    for channels_last in (False, True):
        out = tmp_path_factory.mktemp(f"run_nhwc_{channels_last}")
        cfg = load_config(None, [
            f"data.root={data_root / 'isbi2012'}", f"output_dir={out}", "model.args={channels: [4, 8]}",
            "data.resize=[64, 64]", "train.batch_size=2", "train.iters_per_epoch=1", "train.epochs=1",
            "train.precision=fp32", "train.threads=1", f"train.channels_last={str(channels_last).lower()}",
        ])
        Trainer(cfg, progress=False).fit()
        runs[channels_last] = out
    return runs


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_trained_spec_is_stored_and_packages_keep_the_layout(trained, tmp_path, channels_last) -> None:
    run = trained[channels_last]
    loaded = load_inference_model(run)
    expected = InputSpec.from_config(loaded.config, loaded.model.size_divisor)
    assert expected.channels_last is channels_last and expected.resize == (64, 64)
    for name in ("best.pt", "last.pt"):
        assert InputSpec.from_dict(load_checkpoint(run / "checkpoints" / name)["input"]) == expected
    assert loaded.spec == expected
    package = save_package(loaded, tmp_path / "pkg")
    meta = json.loads((package / "model.json").read_text())
    assert meta["input"]["channels_last"] is channels_last and meta["input"]["resize"] == [64, 64]
    assert meta["input"]["normalize"] == "zscore" and meta["input"]["channels"] == 1  # what older readers read
    assert meta["prediction"] == {"roi_size": None, "overlap": 0.5, "precision": "fp32"}
    from_package = load_inference_model(package)
    assert from_package.spec == expected
    for model in (loaded.model, from_package.model):
        assert _conv_weight(model).is_contiguous(memory_format=torch.channels_last) is channels_last
    del meta["input"]["channels_last"]  # a package written before the layout was recorded: NHWC, as then
    (package / "model.json").write_text(json.dumps(meta))
    old = load_inference_model(package)
    assert old.spec.channels_last and _conv_weight(old.model).is_contiguous(memory_format=torch.channels_last)


def test_evaluation_prediction_and_overlays_use_the_same_spec(trained, tmp_path) -> None:
    run = trained[False]
    loaded = load_inference_model(run)
    cfg = loaded.config
    dataset = make_dataset(cfg, prepare_data(cfg, run / "split.json"), "val", train=False)
    samples = dataset.samples[:2]
    names = [s.stem for s in samples]
    conv = get_convention(cfg.eval.convention)
    evaluated = {c["name"]: logits_to_labels(c["logits"])[0].numpy()
                 for c in evaluation_cases(loaded.model, dataset, cfg.eval, conv, CPU, loaded.spec, False, False, None)}
    drawn = {c.name: c.labels for c in overlay_cases(loaded, run, "val", names)}
    (tmp_path / "images").mkdir()
    for s in samples:
        shutil.copy(s.image, tmp_path / "images" / s.image.name)
    predict_folder(run, tmp_path / "images", tmp_path / "pred", device="cpu", progress=False,
                   options=PredictOptions(overlays=False))
    for i, name in enumerate(names):
        predicted = np.array(Image.open(tmp_path / "pred" / f"{name}.png"))
        np.testing.assert_array_equal(drawn[name], evaluated[name])
        np.testing.assert_array_equal(predicted, loaded.description.decode_labels(evaluated[name]))
        with torch.no_grad():  # the comparison can tell specs apart: without the resize the labels differ
            plain = logits_to_labels(predict_logits(loaded.model, dataset[i]["image"][None], DEFAULT_SPEC))
        assert not np.array_equal(plain[0].numpy(), evaluated[name])


def test_predict_precision_overrides_the_models_only_when_given() -> None:
    from dualseg.deploy.predict import PredictOptions, run_spec
    from dualseg.errors import DualsegError

    spec = InputSpec(precision="auto", roi_size=(64, 64))
    assert run_spec(spec, PredictOptions()).precision == "auto"
    assert run_spec(spec, PredictOptions(precision="fp32")) == InputSpec(precision="fp32", roi_size=(64, 64))
    with pytest.raises(DualsegError, match="unknown precision 'fp31'"):
        PredictOptions(precision="fp31").check()
