"""``dualseg evaluate RUN_DIR --split val|test``: metrics of a trained run, written to RUN_DIR/eval/<split>/."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run's checkpoint on its val or test split")
    p.add_argument("run_dir", help="run directory (or a checkpoint file)")
    p.add_argument("--split", choices=("train", "val", "test"), default="val")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--data", default=None, help="dataset folder, if it moved since training")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.engine.evaluator import evaluate_run, format_summary

    summary, out = evaluate_run(args.run_dir, args.split, args.checkpoint, args.data)
    fov = " inside the FOV" if summary.get("fov") else ""
    print(f"{summary['model']} on {summary['dataset']} {args.split} ({summary['n_images']} images{fov}, "
          f"checkpoint epoch {summary['epoch']}; {summary['convention']})")
    print(format_summary(summary))
    print(f"written: {out / 'summary.json'}")
    return 0
