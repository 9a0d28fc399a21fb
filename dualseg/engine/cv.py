"""Cross-validation folds and repeated seeds: one run directory per (fold, seed), evaluated, then aggregated.

``PARENT/fold<k>_seed<s>/`` (or ``fold<k>`` / ``seed<s>`` when only one of the two varies) is an ordinary run
directory. Folds use ``data.split.strategy: kfold`` with the config's ``data.split.seed``, so every seed sees the
same folds; seeds are the config's ``seed`` + 0, 1, ... . A member whose evaluation summary exists is skipped on a
re-run and an interrupted member resumes from its last checkpoint, so the command can simply be run again.

The aggregate is the papers' "mean ± std over folds/seeds": each member's summary value (the mean over its
images) is one sample, and the std is the sample std (ddof 1) over members. Written to ``PARENT/cv.json``; the
caller formats it (``dualseg cv`` writes ``PARENT/cv.md`` with :func:`dualseg.report.tables.format_cv_markdown`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dualseg.config import Config, apply_overrides, config_from_dict, dump_config, load_yaml
from dualseg.engine.callbacks import TrainerCallback
from dualseg.errors import DualsegError
from dualseg.safety.atomic import atomic_write_text

STD_DDOF = 1


@dataclass
class Member:
    """One run of the study: its fold (None when the split is the config's own) and its seed."""

    fold: int | None
    seed: int
    name: str


def plan_members(folds: int | None, seeds: int | None, base_seed: int) -> list[Member]:
    """Every (fold, seed) pair; names ``fold<k>_seed<s>``, ``fold<k>`` or ``seed<s>``."""
    if folds is None and seeds is None:
        raise DualsegError("give --folds K (k-fold cross-validation), --seeds N (repeats), or both")
    if folds is not None and folds < 2:
        raise DualsegError(f"--folds must be at least 2, got {folds}")
    if seeds is not None and seeds < 1:
        raise DualsegError(f"--seeds must be at least 1, got {seeds}")
    fold_ids: list[int | None] = list(range(folds)) if folds else [None]
    seed_ids = [base_seed + i for i in range(seeds or 1)]
    members = []
    for fold in fold_ids:
        for seed in seed_ids:
            parts = ([f"fold{fold}"] if fold is not None else []) + ([f"seed{seed}"] if seeds else [])
            members.append(Member(fold, seed, "_".join(parts)))
    return members


def member_config(base: dict[str, Any], member: Member, folds: int | None, parent: Path) -> Config:
    """The base config (a dict) with this member's fold, seed and output directory."""
    sets = [f"seed={member.seed}", f"output_dir={parent / member.name}"]
    if member.fold is not None:
        sets += ["data.split.strategy=kfold", f"data.split.folds={folds}", f"data.split.fold={member.fold}"]
    return config_from_dict(apply_overrides(json.loads(json.dumps(base)), sets))


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) else None


def _stats(values: Sequence[Any]) -> dict[str, Any]:
    kept = [_number(v) for v in values]
    finite = np.array([v for v in kept if v is not None], dtype=np.float64)
    n = int(finite.size)
    return {"mean": float(finite.mean()) if n else None,
            "std": float(finite.std(ddof=STD_DDOF)) if n > STD_DDOF else None, "n": n, "values": kept}


def aggregate(summaries: Sequence[dict]) -> dict[str, Any]:
    """Mean ± std over members of each summary value: foreground ``mean``, ``per_class`` means, ``dataset_level``.

    Metrics or classes missing from some summaries count as missing there (their ``n`` is smaller).
    """
    metrics: list[str] = []
    classes: list[str] = []
    for s in summaries:
        metrics += [m for m, v in s["mean"].items() if m not in metrics and (v is None or _number(v) is not None)]
        classes += [c for c in s["classes"] if c not in classes]

    def class_mean(s: dict, cls: str, m: str) -> float | None:
        entry = s["per_class"].get(cls, {}).get(m)
        return entry.get("mean") if isinstance(entry, dict) else None

    pooled = [(s.get("dataset_level") or {}).get("mean") or {} for s in summaries]
    return {
        "n_members": len(summaries),
        "std_ddof": STD_DDOF,
        "mean": {m: _stats([s["mean"].get(m) for s in summaries]) for m in metrics},
        "per_class": {c: {m: _stats([class_mean(s, c, m) for s in summaries]) for m in metrics} for c in classes},
        "dataset_level": {m: _stats([p.get(m) for p in pooled]) for m in metrics if any(m in p for p in pooled)},
    }


def _check_same_config(cfg: Config, run_dir: Path) -> None:
    saved = run_dir / "config.yaml"
    if saved.is_file() and dump_config(config_from_dict(load_yaml(saved))) != dump_config(cfg):
        raise DualsegError(f"{run_dir} was trained with a different config; give the same config and --set "
                           "options as before, or another --output-dir")


def _eval_split(split: str, member: Member, run_dir: Path) -> str:
    if split != "auto":
        return split
    if member.fold is not None:
        return "val"  # the held-out fold
    held_out = json.loads((run_dir / "split.json").read_text())
    return "test" if held_out.get("test") else "val"


def run_cv(
    config: str | Path | None,
    overrides: Sequence[str] = (),
    output_dir: str | Path | None = None,
    folds: int | None = None,
    seeds: int | None = None,
    split: str = "auto",
    checkpoint: str = "best",
    progress: bool = True,
    log: Callable[[str], None] = print,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train and evaluate every member not yet done, then write ``cv.json``; return the record.

    ``split``: the split each member is evaluated on; ``auto`` is the held-out fold (``val``) with ``folds``,
    otherwise the test split (``val`` when the run has no test images). ``callbacks``: passed to every member's
    training (:class:`~dualseg.engine.callbacks.TrainerCallback`).
    """
    from dualseg.engine.run_evaluation import evaluate_run
    from dualseg.engine.trainer import train

    base = apply_overrides(load_yaml(config) if config else {}, list(overrides))
    base_cfg = config_from_dict(base)
    parent = Path(output_dir or f"{base_cfg.output_dir}-cv")
    members = plan_members(folds, seeds, base_cfg.seed)
    summaries, records = [], []
    for i, member in enumerate(members):
        cfg = member_config(base, member, folds, parent)
        run_dir = Path(cfg.output_dir)
        _check_same_config(cfg, run_dir)
        eval_split = _eval_split(split, member, run_dir) if (run_dir / "split.json").is_file() else None
        summary_path = run_dir / "eval" / str(eval_split) / "summary.json"
        if eval_split and summary_path.is_file():
            log(f"[{i + 1}/{len(members)}] {member.name}: done, skipped ({summary_path})")
        else:
            resume = (run_dir / "checkpoints" / "last.pt").is_file()
            log(f"[{i + 1}/{len(members)}] {member.name}: {'resuming' if resume else 'training'} -> {run_dir}")
            train(cfg, resume=resume, progress=progress, callbacks=callbacks)
            eval_split = _eval_split(split, member, run_dir)
            _, out = evaluate_run(run_dir, eval_split, checkpoint, progress=progress)
            summary_path = out / "summary.json"
        summary = json.loads(summary_path.read_text())
        summaries.append(summary)
        records.append({"name": member.name, "fold": member.fold, "seed": member.seed, "run_dir": str(run_dir),
                        "split": eval_split, "n_images": summary.get("n_images"), "epoch": summary.get("epoch"),
                        "mean": summary["mean"]})
    record = {
        "name": base_cfg.name,
        "config": str(config) if config else None,
        "overrides": list(overrides),
        "folds": folds,
        "seeds": seeds,
        "split": split,
        "checkpoint": checkpoint,
        "model": base_cfg.model.name,
        "budget": {"epochs": base_cfg.train.epochs, "iters_per_epoch": base_cfg.train.iters_per_epoch,
                   "batch_size": base_cfg.train.batch_size},
        "convention": summaries[0].get("convention"),
        "members": records,
        "aggregate": aggregate(summaries),
    }
    atomic_write_text(parent / "cv.json", json.dumps(record, indent=1))
    return record
