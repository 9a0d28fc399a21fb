"""Learning-rate schedules as multiplicative factors of the base rate, stepped per iteration or per epoch."""

from __future__ import annotations

import math

import torch

from dualseg.config import ScheduleConfig


def lr_factor(cfg: ScheduleConfig, step: float, total: int, warmup: int = 0) -> float:
    """The factor at ``step`` of ``total`` (both in iterations or both in epochs; ``step`` may be fractional, as
    with ``horizon: time``); linear warmup first.

    poly: (1 - t/T)^power (nnU-Net); cosine: half cosine to ``min_lr``; linear_decay: constant until
    ``decay_start`` then linear to zero at T (pix2pix / DRFL's 30 + 30 epochs); constant: 1.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    t = min(max(step - warmup, 0), max(total - warmup, 1))
    span = max(total - warmup, 1)
    if cfg.name == "poly":
        return (1 - t / span) ** cfg.power
    if cfg.name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t / span))
    if cfg.name == "linear_decay":
        start = cfg.decay_start
        return 1.0 if step < start else max(0.0, 1 - (step - start + 1) / max(total - start + 1, 1))
    return 1.0


class Schedule:
    """Sets the optimizer's learning rate; ``plateau`` delegates to ReduceLROnPlateau on the monitored metric."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int, warmup: int) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.total = total_steps
        self.warmup = warmup
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
            )
            if cfg.name == "plateau"
            else None
        )
        self.set(0)

    def set(self, step: float) -> None:
        if self.plateau is not None:
            return
        factor = lr_factor(self.cfg, step, self.total, self.warmup)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.cfg.min_lr + (base_lr - self.cfg.min_lr) * factor

    def observe(self, metric: float) -> None:
        if self.plateau is not None and math.isfinite(metric):
            self.plateau.step(metric)

    def state_dict(self) -> dict:
        return {"plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        if self.plateau is not None and state.get("plateau"):
            self.plateau.load_state_dict(state["plateau"])
