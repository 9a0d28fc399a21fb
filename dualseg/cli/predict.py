"""``dualseg predict RUN_DIR_OR_CHECKPOINT INPUT OUTPUT_DIR``: masks at the input size plus overlays."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict masks for an image or a folder of images")
    p.add_argument("model", help="run directory or checkpoint file")
    p.add_argument("inputs", help="image file or folder of images")
    p.add_argument("output_dir")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--no-overlays", action="store_true", help="write masks only")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.inference.predict import predict_folder

    written = predict_folder(args.model, args.inputs, args.output_dir, args.checkpoint,
                             overlays=not args.no_overlays, device=args.device,
                             progress=sys.stderr.isatty())  # a bar for people; logs keep errors on one line
    print(f"wrote {len(written)} mask(s) to {args.output_dir}" + ("" if args.no_overlays else " (+ overlays/)"))
    return 0
