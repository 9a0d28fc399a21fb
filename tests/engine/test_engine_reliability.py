"""Reliability of training: SIGKILL and resume is lossless, runs repeat exactly, non-finite losses never reach a
checkpoint, RNG states round-trip, stale temporary files are cleaned."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import dualseg.engine.trainer as trainer_module
from dualseg.checkpoint import save_checkpoint
from dualseg.config import load_config
from dualseg.engine.trainer import Trainer
from dualseg.errors import DualsegError
from dualseg.runtime import rng_state, set_rng_state
from dualseg.safety.atomic import remove_stale_temp_files

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("kill_resume", REPO / "benchmarks/kill_resume.py")
kill_resume = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_resume)


def test_sigkill_at_random_moments_and_during_a_write_resumes_exactly(tmp_path):
    """A real ``dualseg train`` process killed twice (once inside a checkpoint write) ends equal to a clean run."""
    record = kill_resume.kill_resume_experiment(tmp_path, kills=2, epochs=2, iters=4, seed=1, max_writes=2)
    assert record["kills_done"] == 2
    assert any("during a checkpoint write" in e["moment"] for e in record["kills"])
    assert any(e["temporary_file_left"] for e in record["kills"])  # the kill really hit a write in progress
    assert record["every_resume_exact"]
    assert record["temporary_files_after_final_resume"] == []
    assert record["final_weights_equal"] and record["final_optimizer_state_equal"]
    assert record["metrics_csv_equal"] and record["metrics_rows"] == 2


def _cfg(root: Path, out: Path, *extra: str):
    return load_config(None, [f"data.root={root}", f"output_dir={out}", "train.batch_size=2", "train.threads=1",
                              "model.args={channels: [4, 8, 16], dropout: 0.1}", "train.iters_per_epoch=3",
                              "train.precision=fp32", *extra])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return kill_resume.make_dataset(tmp_path_factory.mktemp("data") / "discs")


def test_same_config_and_seed_twice_give_identical_runs(data, tmp_path):
    runs = [Trainer(_cfg(data, tmp_path / name, "train.epochs=2"), progress=False) for name in ("a", "b")]
    for run in runs:
        run.fit()
    a, b = (kill_resume.metrics_rows(tmp_path / name / "metrics.csv") for name in ("a", "b"))
    assert a == b and len(a) == 2
    for key, value in runs[0].model.state_dict().items():
        assert torch.equal(value, runs[1].model.state_dict()[key]), key
    other = Trainer(_cfg(data, tmp_path / "c", "train.epochs=2", "seed=1"), progress=False)
    other.fit()
    assert kill_resume.metrics_rows(tmp_path / "c/metrics.csv") != a  # the seed matters


def _nan_loss_at(monkeypatch, steps: set[int]) -> None:
    """Make the loss NaN at the given 0-based global iterations."""
    real_build = trainer_module.build_loss
    counter = {"i": 0}

    def build(spec):
        loss = real_build(spec)

        def forward(outputs, batch):
            total, parts = type(loss).forward(loss, outputs, batch)
            counter["i"] += 1
            return (total * float("nan") if counter["i"] - 1 in steps else total), parts

        loss.forward = forward
        return loss

    monkeypatch.setattr(trainer_module, "build_loss", build)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoints(data, tmp_path, monkeypatch):
    cfg = _cfg(data, tmp_path / "run", "train.epochs=1")
    Trainer(cfg, progress=False).fit()
    ckpts = tmp_path / "run/checkpoints"
    before = {p.name: p.read_bytes() for p in ckpts.iterdir()}
    _nan_loss_at(monkeypatch, {1})
    resumed = _cfg(data, tmp_path / "run", "train.epochs=2")
    with pytest.raises(DualsegError, match=r"the loss became nan at epoch 2, iteration 2; the last good checkpoint"):
        Trainer(resumed, resume=True, force=True, progress=False).fit()
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == before


def test_nan_loss_skipped_when_configured(data, tmp_path, monkeypatch, capsys):
    _nan_loss_at(monkeypatch, {1, 4})
    trainer = Trainer(_cfg(data, tmp_path / "run", "train.epochs=2", "train.nonfinite=skip"), progress=False)
    state = trainer.fit()
    assert state["epoch"] == 2 and state["step"] == 4  # 6 iterations, 2 skipped
    rows = kill_resume.metrics_rows(tmp_path / "run/metrics.csv")
    assert [float(r["train_skipped_steps"]) for r in rows] == [1.0, 1.0]
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    assert all(v.isfinite().all() for v in trainer.model.state_dict().values() if v.is_floating_point())
    assert "step skipped (train.nonfinite: skip)" in capsys.readouterr().out


def test_non_finite_weights_never_reach_a_checkpoint(data, tmp_path, monkeypatch):
    cfg = _cfg(data, tmp_path / "run", "train.epochs=1", "train.grad_clip=null")
    trainer = Trainer(cfg, progress=False)
    real_epoch = Trainer._train_epoch

    def poisoned(self, epoch):
        out = real_epoch(self, epoch)
        with torch.no_grad():
            next(self.model.parameters()).fill_(float("inf"))
        return out

    monkeypatch.setattr(Trainer, "_train_epoch", poisoned)
    with pytest.raises(DualsegError, match="weights became non-finite"):
        trainer.fit()
    assert not (tmp_path / "run/checkpoints/last.pt").exists()


def test_mid_epoch_checkpoint_resumes_from_its_iteration(data, tmp_path, monkeypatch):
    full = Trainer(_cfg(data, tmp_path / "full", "train.epochs=2"), progress=False)
    full.fit()
    cfg = _cfg(data, tmp_path / "cut", "train.epochs=2", "train.checkpoint_every=2")
    real_save = trainer_module.save_checkpoint

    def stop_after_mid_epoch_save(state, path):
        real_save(state, path)
        if state["trainer"]["epoch"] == 1 and state["trainer"]["epoch_iter"] == 1:
            raise KeyboardInterrupt("stopped right after the step-4 checkpoint, one iteration into epoch 2")

    monkeypatch.setattr(trainer_module, "save_checkpoint", stop_after_mid_epoch_save)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, progress=False).fit()
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    saved = torch.load(tmp_path / "cut/checkpoints/last.pt", weights_only=True)["trainer"]
    assert (saved["epoch"], saved["epoch_iter"], saved["step"]) == (1, 1, 4) and "loss" in saved["epoch_sums"]
    resumed = Trainer(cfg, resume=True, progress=False)
    resumed.fit()
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert kill_resume.metrics_rows(tmp_path / "full/metrics.csv") == kill_resume.metrics_rows(
        tmp_path / "cut/metrics.csv")


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint({"model": {}, "config": {}, "rng": rng_state()}, tmp_path / "c.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.random(), np.random.rand(), torch.rand(1)
    set_rng_state(torch.load(tmp_path / "c.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(1))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_stale_temporary_files_are_removed(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"kept")
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"torn")
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".last.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
