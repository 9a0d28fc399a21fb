"""DRFL's SR teacher pipeline end to end on real images: train-sr, make-sr-targets, PSNR vs bicubic."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dualseg.cli import main
from dualseg.engine.sr_teacher import psnr
from dualseg.models.sr_teacher import SRTeacher


def test_psnr_hand_values():
    a = torch.zeros(1, 1, 2, 2)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(a, a) == float("inf")


def test_teacher_starts_as_bicubic():
    x = torch.rand(1, 1, 8, 8)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(SRTeacher(1, 2, features=4, blocks=1)(x), bicubic, atol=1e-6)


def test_train_sr_then_make_targets(data_root, tmp_path, capsys):
    data = tmp_path / "isbi"
    shutil.copytree(data_root / "isbi2012", data, ignore=shutil.ignore_patterns("test_images*"))
    run = tmp_path / "teacher"
    rc = main(["train-sr", str(data), "--output-dir", str(run), "--features", "4", "--blocks", "1", "--no-progress",
               "--set", "train.epochs=1", "--set", "train.iters_per_epoch=2", "--set", "train.batch_size=2",
               "--set", "data.patch_size=[32, 32]", "--set", "train.threads=1"])
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["teacher_psnr"] > 20 and summary["bicubic_psnr"] > 20
    assert "PSNR" in capsys.readouterr().out
    targets = tmp_path / "targets"
    assert main(["make-sr-targets", str(run / "teacher.pt"), str(data), str(targets), "--no-progress"]) == 0
    assert np.load(targets / "0.npy").shape == (1024, 1024, 1)
    meta = json.loads((targets / "targets.json").read_text())
    assert meta["scale"] == 2 and meta["normalize"] == "zscore" and meta["images"] == 30
    assert main(["make-sr-targets", str(tmp_path / "missing.pt"), str(data), str(targets)]) == 2
