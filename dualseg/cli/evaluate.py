"""``dualseg evaluate RUN_DIR --split val|test``: metrics of a trained run, written to RUN_DIR/eval/<split>/."""

from __future__ import annotations

import argparse

from dualseg.cli.options import add_overwrite


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run's checkpoint on its val or test split")
    p.add_argument("run_dir", help="run directory (or a checkpoint file)")
    p.add_argument("--split", choices=("train", "val", "test"), default="val")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--data", default=None, help="dataset folder, if it moved since training")
    p.add_argument("--convention", default=None,
                   choices=("per_image", "drfl", "dataset", "per_volume", "transunet"),
                   help="metric convention (docs/metrics.md); default: the run's eval.convention")
    p.add_argument("--threshold", type=float, default=None, help="binary tasks: foreground probability threshold")
    p.add_argument("--tune-threshold", action="store_true", default=None,
                   help="choose the threshold with the best Dice on the selection split (--select-on)")
    p.add_argument("--select-on", choices=("val", "test"), default=None,
                   help="split thresholds are chosen on (default: the run's train.select_on, val); 'test' only to "
                        "reproduce papers that did so (warned and recorded)")
    add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.engine.run_evaluation import evaluate_run
    from dualseg.report.summary_text import format_summary

    summary, out = evaluate_run(args.run_dir, args.split, args.checkpoint, args.data, not args.no_progress,
                                convention=args.convention, threshold=args.threshold, tune=args.tune_threshold,
                                select_on=args.select_on, overwrite=args.overwrite)
    fov = " inside the FOV" if summary.get("fov") else ""
    print(f"{summary['model']} on {summary['dataset']} {args.split} ({summary['n_images']} images{fov}, "
          f"checkpoint epoch {summary['epoch']}; {summary['convention']})")
    print(format_summary(summary))
    if summary.get("image_quality"):
        q = summary["image_quality"]
        shown = ", ".join(f"{m.upper()} {q[m]['mean']:.4f}" for m in ("psnr", "ssim") if q[m]["mean"] is not None)
        print(f"SR output ({q['n']} images, intensities in [0, 1]): {shown or 'n/a'}")
    if summary.get("threshold") is not None:
        chosen = f" (chosen on {summary['threshold_selected_on']})" if summary.get("threshold_selected_on") else ""
        print(f"threshold {summary['threshold']}{chosen}")
    print(f"written: {out / 'summary.json'}")
    return 0
