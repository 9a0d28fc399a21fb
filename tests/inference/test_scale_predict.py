"""``dualseg predict --scale``: a fixed factor, ``auto`` on a fundus-like input recovering its rescaling, the one
notice of a model without a recorded scale, scales.csv, bad factors; and the training scale the trainer records."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dualseg
from dualseg.checkpoint import load_checkpoint
from dualseg.cli import main
from dualseg.config import load_config
from dualseg.data.build import prepare_data
from dualseg.data.io import read_mask
from dualseg.deploy.package import save_package
from dualseg.deploy.predict import PredictOptions, predict_arrays, predict_folder
from dualseg.deploy.scaling import NO_SCALE_NOTICE, SCALES_FILE
from dualseg.engine.trainer import Trainer
from dualseg.errors import DualsegError
from dualseg.inference.loading import load_inference_model
from dualseg.inference.scale import object_size
from dualseg.inference.spec import InputSpec
from tests.inference.scale_images import fundus


def _images(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for name, array in arrays.items():
        Image.fromarray(array).save(folder / name)
    return folder


def _masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def _scales(folder: Path) -> list[dict[str, str]]:
    with open(folder / SCALES_FILE) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def fundus_package(make_run, tmp_path: Path) -> Path:
    """A tiny random RGB U-Net package that learned at a FOV diameter of 200 px."""
    run = make_run(tmp_path / "run", "unet", {"channels": [4, 8, 16]}, in_channels=3)
    loaded = load_inference_model(run)
    loaded.spec = dataclasses.replace(loaded.spec, scale_proxy="fov_diameter", train_scale=200.0,
                                      train_scale_range=(195.0, 205.0))
    return save_package(loaded, tmp_path / "package")


def test_a_fixed_factor_predicts_masks_at_the_input_size(unet_run: Path, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    images = _images(tmp_path / "in", {"a.png": rng.integers(0, 255, (40, 56), dtype=np.uint8),
                                       "b.png": rng.integers(0, 255, (33, 47), dtype=np.uint8)})
    for name, scale in (("x2", "2.0"), ("x1", "none")):
        assert main(["predict", str(unet_run), str(images), str(tmp_path / name), "--scale", scale,
                     "--probabilities", "npy", "--no-progress"]) == 0
    assert NO_SCALE_NOTICE not in capsys.readouterr().out  # a FACTOR or none: nothing to say
    scaled, plain = _masks(tmp_path / "x2"), _masks(tmp_path / "x1")
    assert [m.shape for m in scaled.values()] == [(40, 56), (33, 47)] == [m.shape for m in plain.values()]
    for stem in ("a", "b"):  # a random model's masks may be constant: its probabilities tell the scales apart
        p2, p1 = (np.load(tmp_path / name / "probabilities" / f"{stem}.npy") for name in ("x2", "x1"))
        assert p2.shape == p1.shape and p1.shape[1:] == scaled[f"{stem}.png"].shape
        assert np.abs(p2.astype(np.float32) - p1).max() > 1e-3
    assert _scales(tmp_path / "x2") == [{"file": "a.png", "proxy": "factor", "measured_px": "", "factor": "2.0000"},
                                        {"file": "b.png", "proxy": "factor", "measured_px": "", "factor": "2.0000"}]
    assert not (tmp_path / "x1" / SCALES_FILE).exists()


def test_a_model_without_a_recorded_scale_says_so_once_and_predicts_as_before(unet_run: Path, tmp_path: Path,
                                                                              capsys) -> None:
    rng = np.random.default_rng(1)
    images = _images(tmp_path / "in", {f"{k}.png": rng.integers(0, 255, (32, 32), dtype=np.uint8) for k in range(3)})
    assert main(["predict", str(unet_run), str(images), str(tmp_path / "auto"), "--no-progress"]) == 0
    assert capsys.readouterr().out.count(NO_SCALE_NOTICE) == 1
    assert main(["predict", str(unet_run), str(images), str(tmp_path / "none"), "--scale", "none",
                 "--no-progress"]) == 0
    auto, none = _masks(tmp_path / "auto"), _masks(tmp_path / "none")
    assert auto.keys() == none.keys() and all(np.array_equal(auto[k], none[k]) for k in auto)
    assert not (tmp_path / "auto" / SCALES_FILE).exists()
    # a list of files (the demo's validation images) is one call: one model load, one notice
    files = sorted(images.iterdir())
    written = predict_folder(unet_run, files[:2], tmp_path / "listed", progress=False)
    assert [w.name for w in written] == [f.name for f in files[:2]]
    assert capsys.readouterr().out.count(NO_SCALE_NOTICE) == 1
    with pytest.raises(DualsegError, match="two inputs are named '0'"):
        predict_folder(unet_run, [files[0], files[0]], tmp_path / "twice", progress=False)


def test_auto_recovers_the_rescaling_of_a_fundus_input(fundus_package: Path, tmp_path: Path) -> None:
    images = _images(tmp_path / "in", {"same.png": fundus((256, 256), 200), "big.png": fundus((384, 384), 300)})
    out = tmp_path / "pred"
    predict_folder(fundus_package, images, out, device="cpu", progress=False)
    rows = {r["file"]: r for r in _scales(out)}
    assert rows["big.png"]["proxy"] == "fov_diameter"
    assert float(rows["big.png"]["factor"]) == pytest.approx(1 / 1.5, rel=0.05)
    assert float(rows["big.png"]["measured_px"]) == pytest.approx(300, rel=0.02)
    assert float(rows["same.png"]["factor"]) == pytest.approx(1.0, rel=0.02)
    assert np.array(Image.open(out / "big.png")).shape == (384, 384)
    # the in-memory path of the shift benchmark is the same path: same factor, same mask
    loaded = load_inference_model(fundus_package)
    [(name, labels, choice)] = predict_arrays(loaded, [("big.png", fundus((384, 384), 300))], torch.device("cpu"))
    assert choice.factor == pytest.approx(float(rows["big.png"]["factor"]), abs=1e-4)
    np.testing.assert_array_equal(loaded.description.decode_labels(labels), np.array(Image.open(out / "big.png")))


def test_bad_factors_are_refused_in_one_line(fundus_package: Path, tmp_path: Path) -> None:
    images = _images(tmp_path / "in", {"tiny_fov.png": fundus((128, 128), 40)})
    with pytest.raises(DualsegError, match=r"tiny_fov.png: scale factor 5 .*--scale FACTOR.*--scale none"):
        predict_folder(fundus_package, images, tmp_path / "a", device="cpu", progress=False)
    for bad, message in (("10", "outside 0.25..4"), ("0.1", "outside 0.25..4"), ("big", "auto, none or a factor")):
        with pytest.raises(DualsegError, match=message):
            predict_folder(fundus_package, images, tmp_path / "b", device="cpu", progress=False,
                           options=PredictOptions(scale=bad))
    predict_folder(fundus_package, images, tmp_path / "c", device="cpu", progress=False,
                   options=PredictOptions(scale="none"))  # the way out the message names


def test_the_trainer_records_the_training_scale(tmp_path: Path) -> None:
    root = dualseg.sample_data_path("isbi2012")
    cfg = load_config(None, [
        f"data.root={root}", f"output_dir={tmp_path / 'run'}", "model.args={channels: [4, 8]}",
        "data.patch_size=[64, 64]", "data.scale_proxy=object_size", "train.batch_size=2", "train.iters_per_epoch=1",
        "train.epochs=1", "train.precision=fp32", "train.threads=1",
    ])
    Trainer(cfg, progress=False).fit()
    bundle = prepare_data(cfg, tmp_path / "run" / "split.json")
    sizes = [object_size(bundle.description.encode_mask(read_mask(s.mask))) for s in bundle.subset("train")]
    stored = InputSpec.from_dict(load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["input"])
    assert stored.scale_proxy == "object_size" and len(sizes) == 24
    assert stored.train_scale == pytest.approx(float(np.median(sizes)))
    assert stored.train_scale_range == pytest.approx((min(sizes), max(sizes)))
    assert 20 < stored.train_scale < 35  # ISBI 2012 cells: about 28 px across
    assert load_inference_model(tmp_path / "run").spec == stored


@pytest.fixture
def spacing_package(make_run, tmp_path: Path) -> Path:
    """A tiny random gray U-Net package that learned at 10 pixels per mm (0.1 mm pixels)."""
    run = make_run(tmp_path / "run_sp", "unet", {"channels": [4, 8, 16]})
    loaded = load_inference_model(run)
    loaded.spec = dataclasses.replace(loaded.spec, scale_proxy="spacing", train_scale=10.0,
                                      train_scale_range=(10.0, 10.0))
    return save_package(loaded, tmp_path / "package_sp")


def test_spacing_from_headers_or_given_brings_inputs_to_the_training_spacing(spacing_package: Path, tmp_path: Path,
                                                                            capsys) -> None:
    import nibabel as nib
    import tifffile

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (48, 40), dtype=np.uint8)
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "fine.tif", pixels, resolution=(200, 200), resolutionunit="CENTIMETER")  # 20 px/mm
    Image.fromarray(pixels).save(folder / "coarse.png", dpi=(127, 127))  # 5 px/mm
    Image.fromarray(pixels).save(folder / "unknown.png")
    nib.save(nib.Nifti1Image(rng.random((48, 40, 2)).astype(np.float32), np.diag([0.05, 0.05, 5.0, 1.0])),
             folder / "vol.nii.gz")  # 0.05 mm pixels: 20 px/mm
    out = tmp_path / "pred"
    predict_folder(spacing_package, folder, out, device="cpu", progress=False)
    rows = {r["file"]: r for r in _scales(out)}
    assert {r["proxy"] for r in rows.values()} == {"spacing"}
    assert float(rows["fine.tif"]["factor"]) == pytest.approx(0.5)  # twice the training resolution: halved
    assert float(rows["coarse.png"]["factor"]) == pytest.approx(2.0, rel=1e-3)
    assert float(rows["vol.nii.gz"]["factor"]) == pytest.approx(0.5)
    assert float(rows["unknown.png"]["factor"]) == 1.0 and rows["unknown.png"]["measured_px"] == ""
    assert "unknown.png: no spacing to measure (give it with --spacing MM)" in capsys.readouterr().out
    assert np.array(Image.open(out / "fine.png")).shape == (48, 40)  # masks at the input size
    # --spacing fills in what the files do not state; a stated spacing still wins
    again = tmp_path / "pred2"
    predict_folder(spacing_package, folder, again, device="cpu", progress=False,
                   options=PredictOptions(spacing_mm=0.2))
    rows = {r["file"]: r for r in _scales(again)}
    assert float(rows["unknown.png"]["factor"]) == pytest.approx(2.0) and float(rows["fine.tif"]["factor"]) == 0.5
    with pytest.raises(DualsegError, match="--spacing must be a positive"):
        PredictOptions(spacing_mm=0.0).check()


def test_the_trainer_records_the_spacing_of_the_description_or_the_config(tmp_path: Path) -> None:
    root = dualseg.sample_data_path("isbi2012")  # PNGs stating no spacing; the description says 4 nm pixels
    base = [f"data.root={root}", "model.args={channels: [4, 8]}", "data.patch_size=[64, 64]",
            "data.scale_proxy=spacing", "train.batch_size=2", "train.iters_per_epoch=1", "train.epochs=1",
            "train.precision=fp32", "train.threads=1"]
    for name, extra, expected in (("described", [], 1 / 4e-6), ("given", ["data.spacing_mm=0.5"], 2.0)):
        Trainer(load_config(None, [*base, f"output_dir={tmp_path / name}", *extra]), progress=False).fit()
        stored = load_inference_model(tmp_path / name).spec
        assert stored.scale_proxy == "spacing"
        assert stored.train_scale == pytest.approx(expected) and stored.train_scale_range == pytest.approx(
            (expected, expected))
