"""The dataset class on real folders: shapes, encodings, FOV, augmentation determinism, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dualseg.config import load_config
from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.dataset import SegmentationDataset
from dualseg.data.descriptions import get_description
from dualseg.data.layouts import scan_folder
from dualseg.data.scan import Sample
from dualseg.errors import DualsegError


def _cfg(root, *extra):
    return load_config(None, [f"data.root={root}", *extra])


@pytest.mark.parametrize(
    ("name", "channels", "classes"),
    [("isbi2012", 1, {0, 1}), ("drive", 3, {0, 1}), ("acdc", 1, {0, 1, 2, 3}), ("dsb2018", 3, {0, 1}),
     ("cvc_clinicdb", 3, {0, 1})],
)
def test_items_of_every_shared_dataset(data_root, name, channels, classes):
    cfg = _cfg(data_root / name)
    bundle = prepare_data(cfg)
    ds = make_dataset(cfg, bundle, "train", train=False)
    item = ds[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape[0] == channels
    assert item["mask"].dtype == torch.int64 and item["mask"].shape == item["image"].shape[1:]
    assert set(torch.unique(item["mask"]).tolist()) <= classes
    assert torch.isfinite(item["image"]).all()
    assert abs(float(item["image"].mean())) < 1e-3  # z-score
    assert ("fov" in item) == (name == "drive")


def test_augmented_patches_repeat_per_seed_epoch_index(data_root):
    cfg = _cfg(data_root / "drive", "data.patch_size=[64,64]", "data.augment.affine=1.0", "data.augment.elastic=0.5")
    bundle = prepare_data(cfg)
    ds = make_dataset(cfg, bundle, "train", train=True)
    a, b = ds[3], ds[3]
    assert a["image"].shape == (3, 64, 64) and a["mask"].shape == (64, 64) and a["fov"].shape == (64, 64)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["image"], a["image"])
    assert set(torch.unique(a["mask"]).tolist()) <= {0, 1}


def test_cache_is_bounded(data_root):
    scan = scan_folder(data_root / "isbi2012")
    ds = SegmentationDataset(scan.samples[:5], get_description("isbi2012"), cache_bytes=3 * 512 * 512 * 12)
    for i in range(5):
        ds[i]
    assert len(ds._cache) <= 3 and ds._cached_bytes <= ds.cache_bytes


def test_size_mismatch_names_both_files(tmp_path, data_root):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    shutil.copy(data_root / "isbi2012/images/0.png", tmp_path / "images/0.png")
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "masks/0.png")
    ds = SegmentationDataset([Sample("0", tmp_path / "images/0.png", tmp_path / "masks/0.png")],
                             get_description("isbi2012"))
    with pytest.raises(DualsegError, match=r"images/0\.png.*masks/0\.png"):
        ds[0]


def test_layout_errors(tmp_path):
    with pytest.raises(DualsegError, match="not found"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    with pytest.raises(DualsegError, match="no images"):
        scan_folder(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images/a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images/a.tif")
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks/b.png")
    problems = scan_folder(tmp_path).problems
    assert any("duplicate stem 'a'" in p for p in problems)
    assert any("mask without image" in p and "b.png" in p for p in problems)
    assert any("image without mask" in p and "a.png" in p for p in problems)
    with pytest.raises(DualsegError, match="image without mask"):
        prepare_data(_cfg(tmp_path))


def test_epoch_index_pairs_draw_that_epochs_augmentation(data_root):
    cfg = _cfg(data_root / "isbi2012", "data.patch_size=[64,64]", "data.augment.affine=1.0")
    ds = make_dataset(cfg, prepare_data(cfg), "train", train=True)
    ds.set_epoch(4)
    item = ds[2]
    ds.set_epoch(0)
    paired = ds[(4, 2)]  # what a persistent worker that never saw set_epoch(4) computes
    assert torch.equal(paired["image"], item["image"]) and torch.equal(paired["mask"], item["mask"])
    assert not torch.equal(ds[2]["image"], item["image"])
