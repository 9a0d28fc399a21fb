"""Learning-rate schedules against hand values; checkpoints atomic and safely loaded."""

from __future__ import annotations

import pickle

import pytest
import torch

from dualseg.checkpoint import load_checkpoint, save_checkpoint
from dualseg.config import ScheduleConfig
from dualseg.engine.schedules import Schedule, lr_factor
from dualseg.errors import DualsegError


def test_lr_factors():
    poly = ScheduleConfig(name="poly", power=0.9)
    assert lr_factor(poly, 0, 100) == 1.0
    assert lr_factor(poly, 50, 100) == pytest.approx(0.5**0.9)
    cos = ScheduleConfig(name="cosine")
    assert lr_factor(cos, 50, 100) == pytest.approx(0.5)
    assert lr_factor(cos, 100, 100) == pytest.approx(0.0, abs=1e-12)
    lin = ScheduleConfig(name="linear_decay", decay_start=30)
    assert lr_factor(lin, 29, 60) == 1.0
    assert lr_factor(lin, 30, 60) == pytest.approx(1 - 1 / 31)  # DRFL / pix2pix: 1 - (e + 1 - 30) / 31
    assert lr_factor(lin, 59, 60) == pytest.approx(1 - 30 / 31)
    assert lr_factor(ScheduleConfig(name="constant"), 7, 10) == 1.0
    assert lr_factor(poly, 0, 100, warmup=4) == pytest.approx(0.25)


def test_schedule_sets_lr_and_plateau_reduces():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = Schedule(opt, ScheduleConfig(name="poly", power=1.0), total_steps=10, warmup=0)
    sched.set(5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    opt2 = torch.optim.SGD([p], lr=0.1)
    plateau = Schedule(opt2, ScheduleConfig(name="plateau", patience=1, factor=0.5), 10, 0)
    for value in (0.5, 0.5, 0.5):
        plateau.observe(value)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.05)


def test_checkpoint_roundtrip_and_no_temp_files(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "config": {"a": 1}, "rng": torch.get_rng_state()}
    save_checkpoint(state, tmp_path / "c" / "last.pt")
    loaded = load_checkpoint(tmp_path / "c" / "last.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["last.pt"]


class _Evil:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil(), "config": {}}, f)
    with pytest.raises(DualsegError, match="cannot load checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_corrupt_and_foreign_checkpoints(tmp_path):
    (tmp_path / "c.pt").write_bytes(b"\x00garbage")
    with pytest.raises(DualsegError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "f.pt")
    with pytest.raises(DualsegError, match="not a dualseg checkpoint"):
        load_checkpoint(tmp_path / "f.pt")
    with pytest.raises(DualsegError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
