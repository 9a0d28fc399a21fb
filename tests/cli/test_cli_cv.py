"""``dualseg cv``: two folds trained and evaluated for real, aggregated, and skipped when run again."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dualseg.engine.trainer as trainer_module
from dualseg.cli import main

TINY = ["--set", "data.dataset=isbi2012", "--set", "model.args={channels: [8, 16, 32]}", "--set", "train.epochs=1",
        "--set", "train.batch_size=2", "--set", "train.iters_per_epoch=1", "--set", "train.precision=fp32",
        "--set", "train.threads=1", "--set", "name=tiny"]


def _tiny_isbi(data_root: Path, out: Path, n: int = 8, size: int = 64) -> Path:
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True)
        for i in range(n):
            arr = np.asarray(Image.open(data_root / "isbi2012" / sub / f"{i}.png"))
            Image.fromarray(arr[:size, :size]).save(out / sub / f"{i}.png")
    return out


def test_two_folds_then_resume(data_root, tmp_path, capsys, monkeypatch):
    data = _tiny_isbi(data_root, tmp_path / "data")
    parent = tmp_path / "cv"
    args = ["cv", "configs/isbi2012/unet.yaml", "--folds", "2", "--no-progress", "--output-dir", str(parent),
            "--set", f"data.root={data}", *TINY]
    assert main(args) == 0
    record = json.loads((parent / "cv.json").read_text())
    assert [m["name"] for m in record["members"]] == ["fold0", "fold1"]
    splits = [json.loads((parent / f"fold{k}/split.json").read_text()) for k in (0, 1)]
    assert splits[0]["val"] and sorted(splits[0]["val"] + splits[1]["val"]) == sorted(map(str, range(8)))
    summaries = [json.loads((parent / f"fold{k}/eval/val/summary.json").read_text()) for k in (0, 1)]
    dice = record["aggregate"]["mean"]["dice"]
    assert dice["mean"] == pytest.approx(statistics.mean(s["mean"]["dice"] for s in summaries))
    assert dice["std"] == pytest.approx(statistics.stdev(s["mean"]["dice"] for s in summaries))
    md = (parent / "cv.md").read_text()
    assert "budget 1 epochs x 1 steps of batch 2" in md
    assert "| fold0 |" in md and f"| mean ± std | {dice['mean']:.4f} ± {dice['std']:.4f} |" in md
    assert not [line for line in md.splitlines() if line.startswith("|") and "**" in line]  # folds: no bold
    out = capsys.readouterr().out
    assert f"dice          {dice['mean']:.4f} ± {dice['std']:.4f}  (n=2)" in out

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(trainer_module.Trainer, "fit", no_training)
    assert main(args) == 0
    assert capsys.readouterr().out.count("done, skipped") == 2
    assert json.loads((parent / "cv.json").read_text())["aggregate"] == record["aggregate"]

    changed = [*args, "--set", "train.optimizer.lr=0.5"]
    assert main(changed) == 2
    assert "trained with a different config" in capsys.readouterr().err
