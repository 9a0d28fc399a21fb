"""Integration: training on real data lowers the loss; an interrupted run resumes to the uninterrupted result."""

from __future__ import annotations

import csv

import pytest
import torch

import dualseg.engine.trainer as trainer_module
from dualseg.config import load_config
from dualseg.engine.trainer import Trainer, _move
from dualseg.errors import DualsegError
from dualseg.report.curves import CurvesCallback

TINY = [
    "model.args={channels: [8, 16, 32]}",
    "data.patch_size=[64, 64]",
    "train.batch_size=2",
    "train.iters_per_epoch=2",
    "train.precision=fp32",
    "train.threads=1",
]


def _cfg(data_root, out, *extra):
    return load_config(None, [f"data.root={data_root / 'isbi2012'}", f"output_dir={out}", *TINY, *extra])


def test_loss_falls_on_real_data(data_root, tmp_path):
    trainer = Trainer(_cfg(data_root, tmp_path / "run", "train.optimizer.lr=0.01"), progress=False)
    trainer._setup()
    batch = _move(next(iter(trainer._loader(0))), trainer.device)
    losses = []
    for _ in range(3):  # two optimizer steps, three evaluations of the same batch
        loss, _ = trainer.loss_fn(trainer.model(batch["image"]), batch)
        losses.append(float(loss.detach()))
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    assert losses[2] < losses[1] < losses[0]


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in ("time_s", "data_wait")} for row in csv.DictReader(f)]


def test_resume_after_a_crash_equals_an_uninterrupted_run(data_root, tmp_path, monkeypatch):
    full = Trainer(_cfg(data_root, tmp_path / "full", "train.epochs=3"), progress=False)
    full.fit()

    crashed = _cfg(data_root, tmp_path / "crash", "train.epochs=3")
    real_save = trainer_module.save_checkpoint
    calls = {"last": 0}

    def crash_on_second_last(state, path):
        if path.name == "last.pt":
            calls["last"] += 1
            if calls["last"] == 2:
                raise KeyboardInterrupt("simulated kill while writing the epoch-2 checkpoint")
        real_save(state, path)

    monkeypatch.setattr(trainer_module, "save_checkpoint", crash_on_second_last)
    with pytest.raises(KeyboardInterrupt):
        Trainer(crashed, progress=False).fit()
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    assert len(_rows(tmp_path / "crash/metrics.csv")) == 2  # row 2 was logged, its checkpoint never landed

    resumed = Trainer(crashed, resume=True, progress=False)
    state = resumed.fit()
    assert state["epoch"] == 3
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert _rows(tmp_path / "full/metrics.csv") == _rows(tmp_path / "crash/metrics.csv")


def test_run_directory_guards(data_root, tmp_path):
    cfg = _cfg(data_root, tmp_path / "run", "train.epochs=1")
    Trainer(cfg, progress=False).fit()
    with pytest.raises(DualsegError, match="already holds a run"):
        Trainer(cfg, progress=False)
    changed = _cfg(data_root, tmp_path / "run", "train.epochs=2")
    with pytest.raises(DualsegError, match="config differs"):
        Trainer(changed, resume=True, progress=False)
    assert Trainer(changed, resume=True, force=True, progress=False).fit()["epoch"] == 2
    with pytest.raises(DualsegError, match="no checkpoint"):
        Trainer(_cfg(data_root, tmp_path / "other"), resume=True, progress=False)


def test_non_finite_loss_stops_without_overwriting(data_root, tmp_path, monkeypatch):
    real_build = trainer_module.build_loss

    def nan_loss(spec):
        loss = real_build(spec)

        def forward(outputs, batch):
            total, parts = type(loss).forward(loss, outputs, batch)
            return total * float("nan"), parts

        loss.forward = forward
        return loss

    monkeypatch.setattr(trainer_module, "build_loss", nan_loss)
    with pytest.raises(DualsegError, match="loss became nan"):
        Trainer(_cfg(data_root, tmp_path / "run", "train.epochs=1"), progress=False).fit()
    assert not (tmp_path / "run/checkpoints/last.pt").exists()


def test_early_stopping_and_best_checkpoint(data_root, tmp_path, monkeypatch):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])

    def fake_eval(*args, **kwargs):
        return {"mean": {"dice": next(scores)}, "per_class": {}}

    monkeypatch.setattr(trainer_module, "evaluate_dataset", fake_eval)
    cfg = _cfg(data_root, tmp_path / "run", "train.epochs=5", "train.early_stopping=2")
    state = Trainer(cfg, progress=False).fit()
    assert state["epoch"] == 4 and state["best_epoch"] == 2 and state["best"] == 0.7
    best = torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=True)
    assert best["trainer"]["epoch"] == 2


def test_metrics_csv_columns_stay_aligned_when_validation_skips_epochs(data_root, tmp_path):
    Trainer(_cfg(data_root, tmp_path / "run", "train.epochs=3", "train.val_every=2"), progress=False,
            callbacks=[CurvesCallback()]).fit()
    with open(tmp_path / "run/metrics.csv") as f:
        header, *lines = list(csv.reader(f))
    rows = [dict(zip(header, line, strict=True)) for line in lines]  # strict: every line as long as the header
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["val_dice"] != "" for r in rows] == [False, True, True]  # every 2nd epoch, and the last
    assert all(float(r["train_loss"]) > 0 for r in rows)  # the loss column holds the loss in every row
    assert (tmp_path / "run/curves.png").stat().st_size > 0


def test_time_horizon_runs_the_schedule_over_the_process_time_budget(data_root, tmp_path, monkeypatch):
    ticks = iter(range(0, 10_000, 6))  # a process clock that advances 6 s per reading
    monkeypatch.setattr(trainer_module.time, "process_time", lambda: float(next(ticks)))
    cfg = _cfg(data_root, tmp_path / "run", "train.epochs=1", "train.time_limit_min=1",
               "train.time_limit_clock=process", "train.schedule.horizon=time", "train.schedule.name=poly",
               "train.schedule.power=1", "train.optimizer.lr=0.01")
    state = Trainer(cfg, progress=False).fit()
    rows = _rows(tmp_path / "run" / "metrics.csv")
    lrs = [float(r["lr"]) for r in rows]
    assert len(rows) > cfg.train.epochs  # time, not train.epochs, ends the run
    assert state["train_seconds"] >= 60 and state["train_seconds"] - 60 < 12  # within a step of the budget
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False))  # decays with the spent share of the budget
    # six clock readings per epoch (its start; per step the schedule's and the time limit's; its end), so the
    # last step of epoch k ran at share (30 k + 18) / 60 s: poly with power 1 is 1 - share
    spent_at_last_step = [18 + 30 * k for k in range(len(rows))]
    assert lrs == pytest.approx([0.01 * max(0.0, 1 - t / 60) for t in spent_at_last_step], abs=1e-3)


def test_the_time_limit_ends_training_inside_an_epoch_and_validates_it(data_root, tmp_path, monkeypatch):
    """The limit is checked after every step, not only at epoch ends: a run stops within one step of its budget
    (the campaign's arms and the planner's budgets rely on it), and the cut epoch is validated and logged."""
    ticks = iter(range(0, 10_000, 6))  # readings: the trainer's setup, the epoch's start, one per step, its end
    monkeypatch.setattr(trainer_module.time, "process_time", lambda: float(next(ticks)))
    cfg = _cfg(data_root, tmp_path / "run", "train.epochs=3", "train.iters_per_epoch=8", "train.val_every=2",
               "train.time_limit_min=0.5", "train.time_limit_clock=process")
    state = Trainer(cfg, progress=False).fit()
    rows = _rows(tmp_path / "run" / "metrics.csv")
    assert state["step"] == 5  # 6 s per step: the fifth reaches the 30 s budget, three of the eight are not taken
    assert state["train_seconds"] == 36 and state["epoch"] == 1 and state["epoch_iter"] == 0
    assert len(rows) == 1 and rows[0]["val_dice"] != "" and float(rows[0]["train_loss"]) > 0  # validated anyway
    assert (tmp_path / "run/checkpoints/best.pt").exists()
    resumed = Trainer(cfg, resume=True, progress=False).fit()  # its budget is spent: no step more
    assert resumed["step"] == 5 and len(_rows(tmp_path / "run" / "metrics.csv")) == 1


def test_time_horizon_needs_a_time_limit(data_root, tmp_path):
    with pytest.raises(DualsegError, match="time_limit_min"):
        _cfg(data_root, tmp_path / "run", "train.schedule.horizon=time")
