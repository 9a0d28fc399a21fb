"""Two tiny real runs (a 3-level U-Net, 2 training steps) on 64x64 crops of ISBI 2012, evaluated on a 6-image test
split; made once per session and shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualseg.config import load_config
from dualseg.engine.run_evaluation import evaluate_run
from dualseg.engine.trainer import train

TINY_RUN = [
    "data.dataset=isbi2012",
    "data.split.test_fraction=0.5",
    "model.args={channels: [8, 16, 32]}",
    "train.epochs=1",
    "train.batch_size=2",
    "train.iters_per_epoch=2",
    "train.precision=fp32",
    "train.threads=1",
]


def make_tiny_isbi(data_root: Path, out: Path, n: int = 12, size: int = 64) -> Path:
    """``n`` ISBI 2012 images and masks cropped to ``size`` x ``size`` (a real dataset folder, small and fast)."""
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.asarray(Image.open(data_root / "isbi2012" / sub / f"{i}.png"))
            Image.fromarray(arr[100:100 + size, 200:200 + size]).save(out / sub / f"{i}.png")
    return out


@pytest.fixture(scope="session")
def tiny_isbi(data_root, tmp_path_factory) -> Path:
    return make_tiny_isbi(data_root, tmp_path_factory.mktemp("tiny") / "isbi_tiny")


@pytest.fixture(scope="session")
def two_runs(tiny_isbi, tmp_path_factory) -> tuple[Path, Path]:
    """Runs 'small_a' (seed 0) and 'small_b' (seed 1, larger learning rate), both evaluated on the test split."""
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for name, extra in (("small_a", ["seed=0"]), ("small_b", ["seed=1", "train.optimizer.lr=0.01"])):
        cfg = load_config(None, [f"data.root={tiny_isbi}", f"output_dir={root / name}", f"name={name}",
                                 *TINY_RUN, *extra])
        train(cfg, progress=False)
        evaluate_run(root / name, "test", progress=False)
        runs.append(root / name)
    return runs[0], runs[1]
