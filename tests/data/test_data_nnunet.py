"""nnU-Net v2 interoperability: read a raw nnU-Net dataset directly, convert dualseg folders to it and back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dualseg.cli import main
from dualseg.config import load_config
from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.check import check_data
from dualseg.data.convert_nnunet import convert_to_nnunet
from dualseg.data.descriptions import get_description
from dualseg.data.io import read_image, read_mask
from dualseg.data.layouts import scan_folder
from dualseg.data.layouts.nnunet import describe as nnunet_description
from dualseg.data.layouts.nnunet import scan as scan_nnunet
from dualseg.data.resolve import resolve_description
from dualseg.errors import DualsegError


def _write(array: np.ndarray, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _assert_round_trip(src, target, description) -> None:
    """Every pair of ``src`` reads back from the nnU-Net copy with the same pixels and class indices."""
    original = {s.stem: s for s in scan_folder(src, description.image_dir, description.mask_dir).samples}
    back = scan_folder(target)
    assert back.problems == [] and sorted(s.stem for s in back.samples) == sorted(original)
    for s in back.samples:
        o = original[s.stem]
        image = read_image(o.image)
        expected = image[..., :3] if image.shape[-1] == 4 else image
        np.testing.assert_array_equal(read_image(s.image, s.extra_channels), expected)
        np.testing.assert_array_equal(read_mask(s.mask), description.encode_mask(read_mask(o.mask)))


def test_round_trip_synthetic_multiclass_rgba(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "toy"
    for k in range(3):
        _write(rng.integers(0, 255, (9, 11, 4), np.uint8), src / "images" / f"case{k}.png")  # RGBA: alpha dropped
        _write(rng.integers(0, 3, (9, 11)).astype(np.uint8), src / "masks" / f"case{k}.png")
    target = convert_to_nnunet(src, tmp_path / "raw", 7, "Toy", progress=False)
    assert target.name == "Dataset007_Toy"
    meta = json.loads((target / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "R", "1": "G", "2": "B"} and meta["numTraining"] == 3
    assert meta["labels"] == {"background": 0, "class_1": 1, "class_2": 2} and meta["file_ending"] == ".png"
    assert sorted(p.name for p in (target / "imagesTr").iterdir()) == [f"case{k}_0000.png" for k in range(3)]
    _assert_round_trip(src, target, resolve_description(src))
    assert check_data(target, progress=False).problems == []


def test_round_trip_real_isbi_keeps_class_names(tmp_path, data_root, capsys):
    src = tmp_path / "isbi2012"
    for sub in ("images", "masks"):
        (src / sub).mkdir(parents=True)
        for stem in ("0", "7", "29"):
            shutil.copy(data_root / "isbi2012" / sub / f"{stem}.png", src / sub / f"{stem}.png")
    assert main(["convert-nnunet", str(src), "--dest", str(tmp_path / "raw"), "--dataset-id", "501",
                 "--name", "ISBI"]) == 0
    assert "no problems found" in capsys.readouterr().out
    target = tmp_path / "raw" / "Dataset501_ISBI"
    meta = json.loads((target / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "cell_interior": 1} and meta["channel_names"] == {"0": "gray"}
    description = nnunet_description(target)
    assert description.class_names == ("membrane", "cell_interior") and description.background is None
    _assert_round_trip(src, target, get_description("isbi2012"))
    assert np.unique(read_mask(target / "labelsTr/7.png")).tolist() == [0, 1]
    assert main(["check-data", str(target)]) == 0


def _nnunet_two_channel(root, cases=("a", "b", "c", "d", "e")) -> None:
    """An nnU-Net dataset as nnU-Net users write it: two gray channel files per case, three labels."""
    rng = np.random.default_rng(1)
    for case in cases:
        _write(rng.integers(0, 65535, (8, 10), np.uint16), root / "imagesTr" / f"{case}_0000.png")
        _write(rng.integers(0, 255, (8, 10), np.uint8), root / "imagesTr" / f"{case}_0001.png")
        _write(rng.integers(0, 3, (8, 10)).astype(np.uint8), root / "labelsTr" / f"{case}.png")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1", "1": "T2"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": len(cases), "file_ending": ".png",
    }))


def test_read_multichannel_nnunet_dataset_for_training(tmp_path):
    root = tmp_path / "Dataset042_Two"
    _nnunet_two_channel(root)
    scan = scan_nnunet(root)
    assert scan.problems == [] and [s.stem for s in scan.samples] == ["a", "b", "c", "d", "e"]
    assert scan.samples[0].extra_channels == (root / "imagesTr/a_0001.png",)
    cfg = load_config(None, [f"data.root={root}", "data.dataset=nnunet", "data.normalize=unit"])
    bundle = prepare_data(cfg)
    assert bundle.description.class_names == ("background", "liver", "tumour") and bundle.description.channels == 2
    item = make_dataset(cfg, bundle, "train", train=False)[0]
    name = item["name"]
    assert item["image"].shape == (2, 8, 10)
    first = read_image(root / "imagesTr" / f"{name}_0000.png")[..., 0] / 65535
    second = read_image(root / "imagesTr" / f"{name}_0001.png")[..., 0] / 255
    torch.testing.assert_close(item["image"], torch.tensor(np.stack([first, second]), dtype=torch.float32))
    assert torch.equal(item["mask"], torch.from_numpy(read_mask(root / "labelsTr" / f"{name}.png").astype(np.int64)))
    report = check_data(root, progress=False)  # 'auto' recognises dataset.json
    assert report.problems == [] and report.pairs == 5 and report.description.name == "nnunet"


def test_problems_of_an_nnunet_folder_are_named(tmp_path):
    root = tmp_path / "Dataset043_Broken"
    _nnunet_two_channel(root)
    (root / "imagesTr/b_0001.png").unlink()  # a missing channel file
    (root / "labelsTr/c.png").unlink()  # an image without label
    _write(np.zeros((8, 10), np.uint8), root / "labelsTr/z.png")  # a label without image
    problems = check_data(root, progress=False).problems
    assert any("'b'" in p and "2 channel" in p for p in problems)
    assert any("image without label" in p and "c_0000.png" in p for p in problems)
    assert any("label without image" in p and "z.png" in p for p in problems)


def test_convert_refuses_taken_id_and_bad_name(tmp_path, data_root):
    (tmp_path / "raw/Dataset501_Other").mkdir(parents=True)
    with pytest.raises(DualsegError, match="already uses dataset id 501"):
        convert_to_nnunet(data_root / "isbi2012", tmp_path / "raw", 501, "ISBI", progress=False)
    with pytest.raises(DualsegError, match="letters, digits"):
        convert_to_nnunet(data_root / "isbi2012", tmp_path / "raw", 502, "bad name", progress=False)
    with pytest.raises(DualsegError, match="region-based"):
        root = tmp_path / "Dataset044_Regions"
        _nnunet_two_channel(root, cases=("a",))
        meta = json.loads((root / "dataset.json").read_text())
        meta["labels"]["whole"] = [1, 2]
        (root / "dataset.json").write_text(json.dumps(meta))
        nnunet_description(root)


@pytest.mark.parametrize("all_train", [False, True])
def test_drive_official_test_set_goes_to_imagests_unless_all_train(tmp_path, data_root, all_train):
    src = tmp_path / "drive"
    stems = ("01_test", "21_training", "22_training")
    for sub, ending in (("images", ".tif"), ("masks", ".png"), ("fov_masks", ".png")):
        (src / sub).mkdir(parents=True)
        for stem in stems:
            shutil.copy(data_root / "drive" / sub / f"{stem}{ending}", src / sub / f"{stem}{ending}")
    argv = ["convert-nnunet", str(src), "--dest", str(tmp_path / "raw"), "--dataset-id", "4", "--name", "DRIVE"]
    assert main(argv + (["--all-train"] if all_train else [])) == 0
    target = tmp_path / "raw" / "Dataset004_DRIVE"
    train = sorted(p.name for p in (target / "imagesTr").iterdir())
    meta = json.loads((target / "dataset.json").read_text())
    if all_train:
        assert train == [f"{s}_0000.png" for s in stems] and meta["numTraining"] == 3
        assert not (target / "imagesTs").exists()
    else:
        assert train == ["21_training_0000.png", "22_training_0000.png"] and meta["numTraining"] == 2
        assert [p.name for p in (target / "imagesTs").iterdir()] == ["01_test_0000.png"]
        assert [p.name for p in (target / "labelsTs").iterdir()] == ["01_test.png"]
        assert np.unique(read_mask(target / "labelsTs/01_test.png")).tolist() == [0, 1]
        assert check_data(target, progress=False).problems == []  # numTraining matches imagesTr
