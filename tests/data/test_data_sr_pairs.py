"""Super-resolution pairs: LR input, HR target and masks stay aligned through augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.dataset import load_image
from dualseg.data.sr_pairs import TARGETS_META
from dualseg.engine.config import load_config
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
