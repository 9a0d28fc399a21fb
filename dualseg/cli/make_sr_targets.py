"""``dualseg make-sr-targets TEACHER DATA OUTPUT_DIR``: cache the teacher's x2 images as DRFL's SR targets."""

from __future__ import annotations

import argparse

from dualseg.cli.options import add_overwrite


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-sr-targets", help="write a trained SR teacher's outputs for every image of a dataset")
    p.add_argument("teacher", help="teacher checkpoint (OUTPUT_DIR/teacher.pt of train-sr)")
    p.add_argument("data", help="dataset folder with images/")
    p.add_argument("output_dir", help="folder for <stem>.npy targets; point data.sr.targets_dir at it")
    p.add_argument("--no-progress", action="store_true")
    add_overwrite(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.engine.sr_teacher import make_sr_targets

    out = make_sr_targets(args.teacher, args.data, args.output_dir, progress=not args.no_progress,
                          overwrite=args.overwrite)
    print(f"SR targets written to {out}; train with --set data.sr.mode=teacher --set data.sr.targets_dir={out}")
    return 0
