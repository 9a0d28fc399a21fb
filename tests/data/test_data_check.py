"""``dualseg check-data``: clean on every shared dataset, and it names planted problems by file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from dualseg.cli import main
from dualseg.data.check import check_data

SHARED = ("isbi2012", "drive", "cvc_clinicdb", "dsb2018", "acdc")


@pytest.mark.parametrize("name", SHARED)
def test_shared_datasets_are_clean(data_root, name):
    report = check_data(data_root / name, progress=False)
    assert report.problems == []
    assert report.pairs == {"isbi2012": 30, "drive": 40, "cvc_clinicdb": 612, "dsb2018": 65, "acdc": 1522}[name]
    text = report.render()
    assert "no problems found" in text and report.description.name == name
    if name == "drive":
        assert report.fov == 40


def test_planted_problems_are_named(tmp_path, data_root, capsys):
    shutil.copytree(data_root / "isbi2012", tmp_path / "isbi", ignore=shutil.ignore_patterns("test_images*"))
    root = tmp_path / "isbi"
    data = (root / "images/3.png").read_bytes()
    (root / "images/3.png").write_bytes(data[: len(data) // 3])  # truncated image
    Image.fromarray(np.zeros((500, 512), np.uint8)).save(root / "masks/7.png")  # size mismatch
    Image.fromarray(np.full((512, 512), 128, np.uint8)).save(root / "masks/9.png")  # undeclared value
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(root / "masks/99.png")  # mask without image
    assert main(["check-data", str(root), "--dataset", "isbi2012"]) == 1
    out = capsys.readouterr().out
    assert "3.png" in out and "masks/7.png" in out and "masks/9.png" in out and "99.png" in out
    assert "PROBLEMS (4)" in out


def test_clean_folder_exits_zero(data_root, capsys):
    assert main(["check-data", str(data_root / "isbi2012")]) == 0
    assert "image/mask pairs: 30" in capsys.readouterr().out


def test_missing_folder_exits_with_error(tmp_path, capsys):
    assert main(["check-data", str(tmp_path / "nope")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
