"""The data-wait fraction: time blocked on the DataLoader over total step time."""

from __future__ import annotations

import csv
import time

from dualseg.config import load_config
from dualseg.data.dataset import SegmentationDataset
from dualseg.engine.data_wait import DataWait
from dualseg.engine.trainer import Trainer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fraction_from_hand_timed_steps():
    clock = FakeClock()
    wait = DataWait(clock)
    for data_s, compute_s in ((3.0, 1.0), (0.5, 1.5)):  # step 1: 3 s waiting + 1 s computing; step 2: 0.5 + 1.5
        clock.now += data_s
        wait.batch_ready()
        clock.now += compute_s
        wait.step_done()
    assert wait.waited == 3.5 and wait.total == 6.0
    assert wait.fraction == 3.5 / 6.0


def test_no_steps_no_wait():
    assert DataWait(FakeClock()).fraction == 0.0


def test_metrics_csv_reports_slow_loading(data_root, tmp_path, monkeypatch):
    cfg = load_config(None, [
        f"data.root={data_root / 'isbi2012'}", f"output_dir={tmp_path / 'run'}", "model.args={channels: [8, 16]}",
        "data.patch_size=[32, 32]", "train.batch_size=2", "train.iters_per_epoch=2", "train.epochs=1",
        "train.precision=fp32", "train.threads=1", "data.num_workers=0",
    ])
    original = SegmentationDataset.__getitem__

    def slow_read(self, index):  # a 0.2 s read per image: 0.4 s per step against a few ms of tiny-model compute
        time.sleep(0.2)
        return original(self, index)

    monkeypatch.setattr(SegmentationDataset, "__getitem__", slow_read)
    Trainer(cfg, progress=False).fit()
    with open(tmp_path / "run/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert 0.5 < float(rows[0]["data_wait"]) < 1.0
