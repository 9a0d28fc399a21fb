"""``dualseg cv CONFIG --folds K [--seeds N]``: train and evaluate every fold/seed, then mean ± std over them."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cv", help="k-fold cross-validation and/or repeated seeds, aggregated as mean ± std")
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--folds", type=int, default=None, help="k-fold cross-validation with K folds")
    p.add_argument("--seeds", type=int, default=None, help="repeat with N seeds (config seed + 0..N-1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, as for 'dualseg train'")
    p.add_argument("--output-dir", default=None, help="parent folder of the runs (default: <output_dir>-cv)")
    p.add_argument("--split", default="auto", choices=("auto", "train", "val", "test"),
                   help="split each run is evaluated on (auto: the held-out fold with --folds, else test or val)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dualseg.engine.cv import run_cv
    from dualseg.report.curves import CurvesCallback
    from dualseg.report.tables import format_cv_markdown
    from dualseg.safety.atomic import atomic_write_text

    record = run_cv(args.config, args.overrides, args.output_dir, args.folds, args.seeds, args.split,
                    args.checkpoint, progress=not args.no_progress, callbacks=[CurvesCallback()])
    agg = record["aggregate"]
    parent = Path(record["members"][0]["run_dir"]).parent
    atomic_write_text(parent / "cv.md", format_cv_markdown(record))
    for metric, stats in agg["mean"].items():
        if stats["mean"] is not None:
            std = f" ± {stats['std']:.4f}" if stats["std"] is not None else ""
            print(f"{metric:<14}{stats['mean']:.4f}{std}  (n={stats['n']})")
    print(f"written: {parent / 'cv.json'}, {parent / 'cv.md'}")
    return 0
