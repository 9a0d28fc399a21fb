"""The embedded ISBI 2012 sample: shipped with the package, and enough for the whole workflow on real images with
no dataset on the machine (train until the loss falls, Ctrl-C and resume, evaluate, predict, export and reload,
the demo). ``.ci/run`` runs these with DUALSEG_DATA pointing nowhere."""

from __future__ import annotations

import csv
import fnmatch
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dualseg
import dualseg.engine.trainer as trainer_module
from dualseg.cli import main
from dualseg.cli.demo import free_run_dir
from dualseg.data.check import check_data
from dualseg.errors import DualsegError

pytestmark = pytest.mark.sample
REPO = Path(__file__).resolve().parent.parent
SAMPLE = dualseg.sample_data_path("isbi2012")
TINY = ["--set", "model.args={channels: [8, 16, 32]}", "--set", "data.patch_size=[128, 128]", "--set",
        "train.batch_size=2", "--set", "train.iters_per_epoch=4", "--set", "train.threads=1", "--set",
        "train.precision=fp32"]


def test_the_sample_is_the_30_isbi_training_pairs_and_clean():
    assert sorted(p.name for p in SAMPLE.iterdir()) == ["DATASET.md", "images", "masks"]
    stems = sorted(int(p.stem) for p in (SAMPLE / "images").glob("*.png"))
    assert stems == list(range(30)) and sorted(int(p.stem) for p in (SAMPLE / "masks").glob("*.png")) == stems
    report = check_data(SAMPLE, progress=False)
    assert report.problems == [] and report.description.name == "isbi2012"
    mask = np.asarray(Image.open(SAMPLE / "masks/0.png"))
    assert mask.shape == (512, 512) and set(np.unique(mask)) == {0, 255}
    notes = (SAMPLE / "DATASET.md").read_text()
    assert "Arganda-Carreras" in notes and "Cardona" in notes and "Changed" in notes
    with pytest.raises(DualsegError, match="shipped: isbi2012"):
        dualseg.sample_data_path("drive")


def test_package_data_ships_every_sample_file():
    """A non-editable install copies only what the package-data globs name: they must cover the whole folder."""
    section = (REPO / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    globs = re.findall(r'"([^"]+)"', re.search(r"^dualseg = \[(.*)\]$", section, re.M).group(1))
    package = REPO / "dualseg"
    files = [p.relative_to(package).as_posix() for p in (package / "sample_data").rglob("*") if p.is_file()]
    assert len(files) == 61
    assert all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_train_interrupt_resume_evaluate_predict_export_on_the_sample(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    train = ["train", "configs/isbi2012/unet.yaml", "--set", f"data.root={SAMPLE}", "--set", f"output_dir={run}",
             "--set", "train.epochs=4", "--set", "train.optimizer.lr=0.01", *TINY]
    real_save = trainer_module.save_checkpoint
    saves = []

    def ctrl_c_at_the_third_epoch(state, path):
        saves.append(path.name)
        if saves.count("last.pt") == 3:
            raise KeyboardInterrupt
        real_save(state, path)

    monkeypatch.setattr(trainer_module, "save_checkpoint", ctrl_c_at_the_third_epoch)
    assert main([*train, "--no-progress"]) == 130
    assert "continue the run with the same command and --resume" in capsys.readouterr().err
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    assert main([*train, "--resume"]) == 0  # progress on: in a captured (non-terminal) stream, plain lines only
    out, err = capsys.readouterr()
    assert "\r" not in out + err and [line.split()[0] for line in out.splitlines() if line.startswith("epoch=")] \
        == ["epoch=3", "epoch=4"]
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    assert main(["evaluate", str(run), "--split", "val"]) == 0
    summary = json.loads((run / "eval/val/summary.json").read_text())
    assert summary["n_images"] == 6 and 0 < summary["per_class"]["membrane"]["dice"]["mean"] <= 1
    val = json.loads((run / "split.json").read_text())["val"]

    image = SAMPLE / "images" / f"{val[0]}.png"
    assert main(["predict", str(run), str(image), str(tmp_path / "pred")]) == 0
    mask = np.asarray(Image.open(tmp_path / "pred" / image.name))
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255} and len(np.unique(mask)) == 2
    assert main(["export", str(run), "--format", "package", "-o", str(tmp_path / "pkg")]) == 0
    assert dualseg.load_model(tmp_path / "pkg").num_classes == 2
    assert main(["predict", str(tmp_path / "pkg"), str(image), str(tmp_path / "pred_pkg")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pred_pkg" / image.name)), mask)


def test_demo_runs_on_the_sample_with_no_arguments_but_size(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo's defaults: the embedded sample, runs/demo under the current folder
    small = [a.replace("[128, 128]", "[64, 64]").replace("iters_per_epoch=4", "iters_per_epoch=2") for a in TINY]
    assert main(["demo", "--minutes", "0.01", *small]) == 0
    out = capsys.readouterr().out
    run = Path("runs/demo")
    for produced in ("curves.png", "report/index.html", "eval/val/summary.json", "checkpoints/best.pt"):
        assert (run / produced).is_file(), produced
    assert len(list((run / "predictions/overlays").glob("*.png"))) == 6  # the validation images
    assert "HTML report" in out and "runs/demo/report/index.html" in out and "next:" in out
    assert "Dice on 6 validation images: membrane" in out
    assert out.count("records no training scale") <= 1  # one prediction call for the six images, not six notices
    assert free_run_dir("runs/demo") == Path("runs/demo-2")
