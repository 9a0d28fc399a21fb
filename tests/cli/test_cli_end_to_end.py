"""The CLI as a user runs it: train -> evaluate -> predict on real data, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import dualseg
from dualseg.cli import main

pytestmark = pytest.mark.sample  # ISBI 2012 only: runs on the embedded sample when the full data is absent

TINY = ["--set", "model.args={channels: [8, 16, 32]}", "--set", "data.patch_size=[64, 64]", "--set",
        "train.batch_size=2", "--set", "train.iters_per_epoch=2", "--set", "train.epochs=2", "--set", "train.threads=1"]


def test_train_evaluate_predict(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    config = "configs/isbi2012/unet.yaml"
    rc = main(["train", config, "--no-progress", "--set", f"data.root={data_root / 'isbi2012'}",
               "--set", f"output_dir={run}", *TINY])
    assert rc == 0
    assert (run / "checkpoints/best.pt").is_file() and (run / "split.json").is_file()
    assert (run / "config.yaml").is_file() and len((run / "metrics.csv").read_text().splitlines()) == 3
    assert any((run / "tensorboard").iterdir()) and (run / "curves.png").stat().st_size > 10_000

    assert main(["evaluate", str(run), "--split", "val"]) == 0
    summary = json.loads((run / "eval/val/summary.json").read_text())
    assert summary["n_images"] == 6 and set(summary["classes"]) == {"membrane", "cell_interior"}
    for key in ("dice", "iou", "accuracy", "sensitivity", "specificity", "precision"):
        assert 0 <= summary["mean"][key] <= 1
    assert "dice" in summary["per_class"]["membrane"] and summary["dataset_level"]["mean"]["dice"] is not None

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    src = np.asarray(Image.open(data_root / "isbi2012/images/0.png"))
    Image.fromarray(src[:300, :200]).save(inputs / "crop.png")  # a size the network cannot take directly
    Image.fromarray(src).save(inputs / "full.tif")
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(inputs), str(out)]) == 0
    crop = Image.open(out / "crop.png")
    assert crop.size == (200, 300) and set(np.unique(np.asarray(crop))) <= {0, 255}
    assert Image.open(out / "full.png").size == (512, 512)
    assert Image.open(out / "overlays/crop.png").mode == "RGB"


def test_models_lists_every_registered_name(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in dualseg.list_models():
        assert name in out


def test_one_line_errors(tmp_path, capsys, data_root):
    rc = main(["train", "configs/isbi2012/unet.yaml", "--set", "model.name=unett",
               "--set", f"output_dir={tmp_path / 'r'}", "--set", f"data.root={data_root / 'isbi2012'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown model 'unett' (did you mean 'unet'?)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["train", "configs/isbi2012/unet.yaml", "--set", "train.epohcs=3"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    if not torch.cuda.is_available():
        assert main(["train", "configs/isbi2012/unet.yaml", "--set", "train.device=cuda", "--set",
                     f"output_dir={tmp_path / 'c'}"]) == 2
        assert "no CUDA GPU is available" in capsys.readouterr().err
