"""Readers: every format present in ../shared/data, plus generated edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from dualseg.data.io import read_image, read_mask, to_channels, to_float
from dualseg.errors import DualsegError


def test_isbi_gray_png(data_root):
    img = read_image(data_root / "isbi2012/images/0.png")
    assert img.shape == (512, 512, 1) and img.dtype == np.uint8
    mask = read_mask(data_root / "isbi2012/masks/0.png")
    assert mask.shape == (512, 512) and set(np.unique(mask)) == {0, 255}


def test_drive_rgb_tiff_and_gif_derived_masks(data_root):
    img = read_image(data_root / "drive/images/21_training.tif")
    assert img.shape == (584, 565, 3) and img.dtype == np.uint8
    assert read_mask(data_root / "drive/fov_masks/21_training.png").shape == (584, 565)


def test_acdc_16bit(data_root):
    img = read_image(data_root / "acdc/images/patient002_frame01_slice_1.png")
    assert img.dtype == np.uint16 and img.ndim == 3 and img.shape[-1] == 1
    f = to_float(img)
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    assert np.allclose(f, img.astype(np.float64) / 65535, atol=1e-6)
    assert set(np.unique(read_mask(data_root / "acdc/masks/patient002_frame01_slice_1.png"))) <= {0, 1, 2, 3}


def test_dsb_rgba_and_instance_masks(data_root):
    stems = sorted(p.stem for p in (data_root / "dsb2018/images").iterdir())
    shapes = {read_image(data_root / f"dsb2018/images/{s}.png").shape[-1] for s in stems[:30]}
    assert 4 in shapes  # RGBA present
    rgba = next(s for s in stems if read_image(data_root / f"dsb2018/images/{s}.png").shape[-1] == 4)
    assert to_channels(read_image(data_root / f"dsb2018/images/{rgba}.png"), 3).shape[-1] == 3
    inst = read_mask(data_root / f"dsb2018/instance_masks/{stems[0]}.png")
    assert inst.dtype == np.uint16 and inst.max() > 1


def test_cvc_rgb_png(data_root):
    img = read_image(data_root / "cvc_clinicdb/images/1.png")
    assert img.shape == (288, 384, 3)


def test_generated_formats(tmp_path):
    rng = np.random.default_rng(0)
    arr16 = rng.integers(0, 65535, (20, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", arr16)
    assert np.array_equal(read_image(tmp_path / "a.tif")[..., 0], arr16)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b.jpg")
    assert read_image(tmp_path / "b.jpg").shape == (20, 30, 3)
    pal = Image.fromarray(rng.integers(0, 3, (20, 30), dtype=np.uint8), mode="L").convert("P")
    pal.save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").shape == (20, 30)
    gray = to_channels(rgb, 1)
    assert gray.shape == (20, 30, 1)
    assert to_channels(gray, 3).shape == (20, 30, 3)


def test_an_rgb_image_for_a_gray_model_is_scaled_to_unit_range():
    from dualseg.data.preprocess import read_unit

    rgb = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0]]], np.uint8)
    gray = read_unit(rgb, 1, "none")
    assert gray.shape == (1, 3, 1)
    assert np.allclose(gray[0, :, 0], [1.0, 0.299, 0.0], atol=1e-6)  # luminance weights, by the dtype's range


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DualsegError, match="empty.png"):
        read_image(tmp_path / "empty.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DualsegError, match="trunc.png"):
        read_image(tmp_path / "trunc.png")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(DualsegError, match="junk.tif"):
        read_image(tmp_path / "junk.tif")
    with pytest.raises(DualsegError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_nan_image_is_refused(tmp_path):
    arr = np.ones((8, 8), np.float32)
    arr[2, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", arr)
    with pytest.raises(DualsegError, match="NaN"):
        to_float(read_image(tmp_path / "nan.tif"), tmp_path / "nan.tif")


def test_wrong_channel_conversion():
    with pytest.raises(DualsegError, match="channels"):
        to_channels(np.zeros((4, 4, 5), np.uint8), 3)
