"""data.preprocess: the green channel and CLAHE by hand, the step stored in the InputSpec, and a run trained on
green-channel input whose package predicts the run directory's masks with the step taken from the spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dualseg
from dualseg.config import load_config
from dualseg.data.build import describe, make_dataset, prepare_data
from dualseg.data.preprocess import clahe, preprocess_image, unit_image
from dualseg.errors import DualsegError
from dualseg.inference.spec import InputSpec


def test_green_is_channel_one_of_rgb():
    stored = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    green = unit_image(stored, 1, "green")
    assert green.shape == (2, 3, 1) and green.dtype == np.float32
    assert np.array_equal(green[..., 0], stored[..., 1] / np.float32(255))
    rgba = np.concatenate([stored, np.full((2, 3, 1), 7, np.uint8)], axis=-1)
    assert np.array_equal(unit_image(rgba, 1, "green"), green)  # alpha dropped first


def test_none_is_the_image_as_before():
    stored = np.random.default_rng(0).integers(0, 65536, (5, 4, 3), dtype=np.uint16)
    assert np.array_equal(unit_image(stored, 3, "none"), stored.astype(np.float32) / 65535)


def test_clahe_without_clipping_on_one_tile_is_histogram_equalisation():
    # four gray levels, each on a quarter of the pixels: their cumulative shares 1/4, 2/4, 3/4, 1
    image = np.repeat(np.array([[0.2, 0.3, 0.4, 0.5]], np.float32), 4, axis=0)
    out = clahe(image, tiles=1, clip=1.0, bins=4)
    assert np.allclose(out[0], [0.25, 0.5, 0.75, 1.0])
    assert np.array_equal(clahe(np.full((6, 6), 0.3, np.float32)), np.zeros((6, 6), np.float32))  # flat: zeros


def test_clahe_raises_local_contrast_and_stays_in_range():
    y, x = np.mgrid[0:128, 0:128]
    faint = 0.01 * np.sin(x / 2.0) * np.sin(y / 3.0)  # the same faint texture on a dark and a bright half
    image = (np.where(x < 64, 0.1, 0.8) + faint).astype(np.float32)
    out = clahe(image)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    for half in (np.s_[:, 8:56], np.s_[:, 72:120]):  # inside each half, away from the edge between them
        before, after = image[half].std(), out[half].std()
        assert after > 3 * before  # a min-max stretch of the whole image alone would give 1/0.72 = 1.4x
    rgb = np.stack([image, image * 0.5, image * 0.25], axis=-1)
    coloured = preprocess_image(rgb, "clahe")
    assert coloured.shape == rgb.shape and coloured.min() >= 0 and coloured.max() <= 1
    ratio = coloured[..., 1] / np.maximum(coloured[..., 0], 1e-6)
    assert np.allclose(ratio[coloured[..., 0] > 0.01], 0.5, atol=1e-4)  # the value channel only: hue kept


def test_spec_round_trip_with_and_without_preprocess():
    spec = InputSpec(preprocess="clahe", resize=(64, 48))
    assert spec.to_dict()["preprocess"] == "clahe" and InputSpec.from_dict(spec.to_dict()) == spec
    old = spec.to_dict()
    del old["preprocess"]
    assert InputSpec.from_dict(old).preprocess == "none"  # records before the field read as none
    with pytest.raises(ValueError, match="preprocess must be one of none, green, clahe, got 'sharpen'"):
        InputSpec.from_dict({"preprocess": "sharpen"})
    with pytest.raises(TypeError, match="preprocess must be a string"):
        InputSpec.from_dict({"preprocess": 1})
    assert InputSpec.from_config(load_config(None, ["data.preprocess=green"]), 8).preprocess == "green"
    assert InputSpec.from_config(load_config(None), 8).preprocess == "none"


def test_green_needs_rgb_and_makes_one_input_channel(tmp_path):
    with pytest.raises(DualsegError, match="keeps the green channel of RGB images, but dataset 'isbi2012' has 1"):
        describe(load_config(None, [f"data.root={dualseg.sample_data_path('isbi2012')}", "data.preprocess=green"]))
    with pytest.raises(DualsegError, match="unknown config key|is not one of none, green, clahe"):
        load_config(None, ["data.preprocess=blue"])
    root = _rgb_folder(tmp_path / "rgb")
    cfg = load_config(None, [f"data.root={root}", "data.preprocess=green"])
    assert describe(cfg).channels == 1
    item = make_dataset(cfg, prepare_data(cfg), "train", train=False)[0]
    stored = np.asarray(Image.open(root / "images" / f"{item['name']}.png"))
    green = stored[..., 1].astype(np.float32) / 255
    assert item["image"].shape == (1, 48, 48)
    assert np.allclose(item["image"][0].numpy(), (green - green.mean()) / green.std(), atol=1e-5)  # then zscore


def _rgb_folder(root: Path, count: int = 6, side: int = 48) -> Path:
    """RGB images whose green channel shows a bright square (the mask); red and blue are noise."""
    rng = np.random.default_rng(0)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for i in range(count):
        mask = np.zeros((side, side), np.uint8)
        mask[6 + i:30 + i, 10:34 - i] = 255
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        image[..., 1] = np.where(mask > 0, 200, 60) + rng.integers(0, 20, (side, side))
        Image.fromarray(image).save(root / "images" / f"c{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
    return root


@pytest.mark.slow
def test_a_green_run_and_its_package_predict_the_same_masks(tmp_path):
    from dualseg.deploy.package import save_package
    from dualseg.deploy.predict import predict_folder
    from dualseg.engine.trainer import train
    from dualseg.inference.loading import load_inference_model

    root = _rgb_folder(tmp_path / "rgb")
    run = tmp_path / "run"
    cfg = load_config(None, [f"data.root={root}", f"output_dir={run}", "data.preprocess=green",
                             "model.args={channels: [4, 8]}", "data.patch_size=[32, 32]", "train.epochs=2",
                             "train.batch_size=2", "train.iters_per_epoch=3", "train.precision=fp32",
                             "train.threads=1", "data.augment.hue=0.05", "data.augment.saturation=0.3"])
    train(cfg, progress=False)
    loaded = load_inference_model(run)
    assert loaded.spec.preprocess == "green" and loaded.model.in_channels == 1
    package = save_package(loaded, tmp_path / "pkg")
    meta = json.loads((package / "model.json").read_text())
    assert meta["input"]["preprocess"] == "green" and meta["input"]["channels"] == 1
    images = root / "images"
    from_run = predict_folder(run, images, tmp_path / "from_run", progress=False)
    from_package = predict_folder(package, images, tmp_path / "from_package", progress=False)
    for a, b in zip(from_run, from_package):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    # the step is applied at prediction: other red and blue channels give the same masks
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    for path in sorted(images.iterdir()):
        pixels = np.asarray(Image.open(path)).copy()
        pixels[..., 0], pixels[..., 2] = 255 - pixels[..., 2], pixels[..., 0] // 2
        Image.fromarray(pixels).save(swapped / path.name)
    for a, b in zip(from_package, predict_folder(package, swapped, tmp_path / "from_swapped", progress=False)):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
