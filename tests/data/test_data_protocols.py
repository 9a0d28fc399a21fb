"""Split protocols (DRFL's ISBI 2012 protocol, leaky and clean) and the seeded offline copies behind them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dualseg.config import load_config
from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.copies import OfflineCopy, make_copies
from dualseg.data.scan import Sample
from dualseg.errors import DualsegError

SLICES = [str(i) for i in range(30)]


def source(stem: str) -> str:
    return stem.rsplit("_copy", 1)[0]


def folder(tmp_path, n: int = 30):
    """``n`` 64x64 images whose mask is the bright left half of a gradient (so image and mask must move together)."""
    root = tmp_path / "isbi2012"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    x = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    for i in range(n):
        image = x.copy()
        image[: 4 + i % 8] = 0  # a different dark band per image: copies differ from their sources
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(np.where(image >= 128, 255, 0).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    return root


def bundle(root, protocol: str, fold: int = 0, folds: int = 4, seed: int = 0):
    cfg = load_config(None, [f"data.root={root}", "data.dataset=isbi2012", f"data.split.protocol={protocol}",
                             f"data.split.fold={fold}", f"data.split.folds={folds}", f"data.split.seed={seed}"])
    return cfg, prepare_data(cfg)


def leaked(split: dict[str, list[str]]) -> set[str]:
    """Source slices with copies in the test split and in train or val."""
    seen = {source(s) for s in split["train"] + split["val"]}
    return {source(s) for s in split["test"]} & seen


@pytest.mark.parametrize("protocol", ["drfl_leaky", "drfl_clean"])
def test_sizes_210_30_60_and_disjoint_test_folds(tmp_path, protocol):
    root = folder(tmp_path)
    tests = []
    for fold in range(4):
        _, b = bundle(root, protocol, fold)
        counts = {k: len(v) for k, v in b.split.items()}
        assert counts == {"train": 210, "val": 30, "test": 60}
        assert len(set().union(*b.split.values())) == 300
        tests.append(set(b.split["test"]))
    assert sum(len(t) for t in tests) == len(set().union(*tests)) == 240  # 4 disjoint test sets of 60
    all_five = set().union(*(set(bundle(root, protocol, f, folds=5)[1].split["test"]) for f in range(5)))
    assert len(all_five) == 300  # folds = 5 tests every image exactly once


def test_leaky_protocol_leaks_and_clean_never_does(tmp_path):
    root = folder(tmp_path)
    for fold in range(4):
        assert leaked(bundle(root, "drfl_leaky", fold)[1].split)  # some slice has copies on both sides
        clean = bundle(root, "drfl_clean", fold)[1].split
        assert not leaked(clean)
        assert {k: len({source(s) for s in v}) for k, v in clean.items()} == {"train": 21, "val": 3, "test": 6}
        assert not {source(s) for s in clean["train"]} & {source(s) for s in clean["val"]}


def test_protocol_is_deterministic(tmp_path):
    root = folder(tmp_path)
    cfg, a = bundle(root, "drfl_leaky", 1)
    _, b = bundle(root, "drfl_leaky", 1)
    assert a.split == b.split and a.copies == b.copies
    assert bundle(root, "drfl_leaky", 1, seed=1)[1].split != a.split
    kfold = load_config(None, [f"data.root={root}", "data.split.protocol=drfl_leaky", "data.split.strategy=kfold",
                               "data.split.fold=1", "data.split.folds=4"])  # as 'dualseg cv' sets it
    assert prepare_data(kfold).split == a.split
    x, y = make_dataset(cfg, a, "test", train=False), make_dataset(cfg, b, "test", train=False)
    for i in range(3):
        assert x[i]["name"] == y[i]["name"] and x[i]["image"].equal(y[i]["image"]) and x[i]["mask"].equal(y[i]["mask"])


def test_copies_are_flipped_and_rotated_with_their_masks(tmp_path):
    root = folder(tmp_path)
    cfg, b = bundle(root, "drfl_leaky")
    names = sorted(b.samples)
    ds = make_dataset(cfg, b, "train", train=False)
    ds.samples = [b.samples[s] for s in names]  # every copy, in name order
    first = {k: ds[names.index(f"5_copy{k}")] for k in range(10)}
    original = np.array(Image.open(root / "masks" / "5.png")) > 0
    unit = np.array(Image.open(root / "images" / "5.png")) / 255
    threshold = (128 / 255 - unit.mean()) / unit.std()  # the mask's threshold in the z-scored image
    assert np.array_equal(first[0]["mask"].numpy() == 1, original)  # copy 0 is the slice itself
    for k in range(1, 10):
        item = first[k]
        assert not item["image"].equal(first[0]["image"]) and not item["mask"].equal(first[0]["mask"])
        # image and mask moved together: the mask is still the bright part of the image (up to interpolation)
        image, mask = item["image"][0].numpy(), item["mask"].numpy()
        assert ((image >= threshold) == (mask == 1)).mean() > 0.98


def test_offline_copy_hand_values():
    a = {"image": np.arange(6, dtype=np.float32).reshape(2, 3, 1), "mask": np.array([[1, 0, 0], [0, 0, 0]])}
    s = Sample("x", None)  # type: ignore[arg-type]
    out = OfflineCopy(s, 1, hflip=True, vflip=True).apply(a)
    assert out["image"][..., 0].tolist() == [[5, 4, 3], [2, 1, 0]] and out["mask"].tolist() == [[0, 0, 0], [0, 0, 1]]
    square = {"mask": np.array([[1, 1, 0], [0, 0, 0], [0, 0, 0]])}
    assert OfflineCopy(s, 1, angle=90.0).apply(square)["mask"].sum() == 2  # nearest: labels stay labels
    assert OfflineCopy(s, 1, angle=90.0).apply(square)["mask"].dtype == square["mask"].dtype
    table = make_copies([s], 10, seed=0)
    assert list(table) == [f"x_copy{k}" for k in range(10)] and table["x_copy0"] == OfflineCopy(s, 0)
    assert all(0 <= c.angle < 360 for c in table.values()) and len({c.angle for c in table.values()}) == 10


def test_unknown_protocol_is_one_line_naming_the_choices(tmp_path):
    root = folder(tmp_path, 3)
    with pytest.raises(DualsegError, match=r"unknown split protocol 'drfl_leak' \(did you mean 'drfl_leaky'\?\); "
                       r"choose one of drfl_leaky, drfl_clean$") as e:
        bundle(root, "drfl_leak")
    assert "\n" not in str(e.value)
    with pytest.raises(DualsegError, match="leave data.split.strategy at default"):
        prepare_data(load_config(None, [f"data.root={root}", "data.split.protocol=drfl_clean",
                                        "data.split.strategy=random"]))
    with pytest.raises(DualsegError, match="folds <= 5"):
        bundle(folder(tmp_path / "b"), "drfl_clean", 0, folds=6)


def test_isbi2012_protocols_on_the_real_slices(data_root):
    cfg, b = bundle(data_root / "isbi2012", "drfl_clean", 2)
    assert len(b.samples) == 300 and {k: len(v) for k, v in b.split.items()} == {"train": 210, "val": 30, "test": 60}
    item = make_dataset(cfg, b, "test", train=False)[0]
    assert item["image"].shape == (1, 512, 512) and item["mask"].shape == (512, 512)
