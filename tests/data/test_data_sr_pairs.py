"""Super-resolution pairs: LR input, HR target and masks stay aligned through augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dualseg.config import load_config
from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.dataset import load_image
from dualseg.data.sr_pairs import TARGETS_META, downsample
from dualseg.errors import DualsegError
from dualseg.losses import build_loss

FLIPS_ONLY = ["data.augment.affine=0", "data.augment.intensity=0", "data.augment.gamma=0", "data.augment.noise=0",
              "data.augment.flip=1.0", "data.augment.rot90=1.0"]


def _dataset(data_root, *extra):
    cfg = load_config(None, [f"data.root={data_root / 'isbi2012'}", "data.patch_size=[64, 64]", *FLIPS_ONLY, *extra])
    return make_dataset(cfg, prepare_data(cfg), "train", train=True)


@pytest.mark.parametrize(("mask_at", "mask_size"), [("input", 32), ("hr", 64)])
def test_downsample_pairs(data_root, mask_at, mask_size):
    ds = _dataset(data_root, "data.sr.mode=downsample", f"data.sr.mask_at={mask_at}")
    item = ds[2]
    assert item["image"].shape == (1, 32, 32) and item["hr_image"].shape == (1, 64, 64)
    assert item["mask"].shape == (mask_size, mask_size)
    assert torch.allclose(item["image"], F.avg_pool2d(item["hr_image"][None], 2)[0], atol=1e-6)
    if mask_at == "input":  # the input-size mask is the HR mask sampled at the centre of each 2x2 cell
        full = _dataset(data_root, "data.sr.mode=downsample", "data.sr.mask_at=hr")[2]
        assert torch.equal(item["mask"], full["mask"][1::2, 1::2])


def test_downsample_interpolations():
    """area = 2x2 block means; bicubic / bilinear = cv2-style samples at the block centres (hand-computed)."""
    x = torch.arange(16.0).view(1, 1, 4, 4)  # rows 0-3, value 4 * row + col: a linear ramp
    assert torch.equal(downsample(x, 2, "area"), F.avg_pool2d(x, 2))
    # a linear ramp sampled at the centre of each 2x2 block (half-pixel positions 0.5, 2.5) = the block means
    assert torch.allclose(downsample(x, 2, "bilinear"), F.avg_pool2d(x, 2))
    # bicubic (a = -0.75) at 0.5 between pixels 0 and 1 uses taps -1..2 with weights (-3, 19, 19, -3) / 32: on
    # a ramp with a replicated border, (-3 * 0 + 19 * 0 + 19 * 1 - 3 * 2) / 32 = 13 / 32 at the left edge
    y = downsample(torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]]).expand(1, 1, 2, 4), 2, "bicubic")
    assert y.shape == (1, 1, 1, 2)
    assert y[0, 0, 0, 0].item() == pytest.approx(13 / 32)
    odd = torch.randn(1, 3, 9, 7)
    for mode in ("area", "bicubic", "bilinear"):
        assert downsample(odd, 2, mode).shape == (1, 3, 4, 3)
    with pytest.raises(DualsegError, match="choose one of area, bicubic, bilinear"):
        downsample(x, 2, "lanczos")


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_downsample_pairs_interpolation(data_root, mode):
    item = _dataset(data_root, "data.sr.mode=downsample", "data.sr.mask_at=hr", f"data.sr.interpolation={mode}")[2]
    expected = F.interpolate(item["hr_image"][None], scale_factor=0.5, mode=mode, align_corners=False)[0]
    assert torch.allclose(item["image"], expected, atol=1e-6)
    # at scale 2, bilinear samples every 2x2 block at its centre = the block mean; bicubic differs from it
    area = torch.allclose(item["image"], F.avg_pool2d(item["hr_image"][None], 2)[0], atol=1e-5)
    assert area == (mode == "bilinear")


def test_teacher_pairs_stay_aligned(data_root, tmp_path):
    cfg = load_config(None, [f"data.root={data_root / 'isbi2012'}"])
    bundle = prepare_data(cfg)
    for stem, sample in bundle.samples.items():  # a fake teacher: nearest x2 of the normalised original
        image = load_image(sample.image, 1, "zscore")
        np.save(tmp_path / f"{stem}.npy", image.repeat(2, axis=0).repeat(2, axis=1))
    (tmp_path / TARGETS_META).write_text(json.dumps({"scale": 2, "normalize": "zscore"}))
    ds = _dataset(data_root, "data.sr.mode=teacher", f"data.sr.targets_dir={tmp_path}")
    item = ds[5]
    assert item["image"].shape == (1, 32, 32) and item["hr_image"].shape == (1, 64, 64)
    assert torch.allclose(item["image"], F.avg_pool2d(item["hr_image"][None], 2)[0], atol=1e-5)
    assert item["mask"].shape == (32, 32)


def test_teacher_mode_errors(data_root, tmp_path):
    with pytest.raises(DualsegError, match="make-sr-targets"):
        _dataset(data_root, "data.sr.mode=teacher", f"data.sr.targets_dir={tmp_path}")
    (tmp_path / TARGETS_META).write_text(json.dumps({"scale": 4, "normalize": "zscore"}))
    with pytest.raises(DualsegError, match="scale 4"):
        _dataset(data_root, "data.sr.mode=teacher", f"data.sr.targets_dir={tmp_path}")
    (tmp_path / TARGETS_META).write_text(json.dumps({"scale": 2, "normalize": "zscore"}))
    ds = _dataset(data_root, "data.sr.mode=teacher", f"data.sr.targets_dir={tmp_path}")
    with pytest.raises(DualsegError, match="SR target missing"):
        ds[0]


def test_regression_losses():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[0.0, 2.0], [5.0, 4.0]]]])
    l1 = build_loss([{"name": "l1", "output": "sr", "target": "hr_image", "valid": None}])
    total, parts = l1({"sr": pred}, {"hr_image": target})
    assert float(total) == pytest.approx((1 + 0 + 2 + 0) / 4) and parts == {"l1": pytest.approx(0.75)}
    mse = build_loss([{"name": "mse", "output": "sr", "target": "hr_image"}])
    assert float(mse({"sr": pred}, {"hr_image": target})[0]) == pytest.approx((1 + 4) / 4)
    with pytest.raises(DualsegError, match="differ"):
        l1({"sr": pred}, {"hr_image": torch.zeros(1, 1, 4, 4)})
