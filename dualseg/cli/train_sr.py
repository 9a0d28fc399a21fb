"""``dualseg train-sr DATA --output-dir DIR``: train DRFL's SR teacher on a dataset's own images."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-sr", help="train a x2 super-resolution teacher on a dataset's images (for DRFL)")
    p.add_argument("data", help="dataset folder with images/ (and masks/, for the split)")
    p.add_argument("--output-dir", default="runs/sr_teacher")
    p.add_argument("--features", type=int, default=32, help="teacher width")
    p.add_argument("--blocks", type=int, default=8, help="residual blocks")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. --set train.epochs=40 --set data.sr.scale=2")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.engine.sr_teacher import teacher_config, train_sr_teacher

    cfg = teacher_config(args.data, args.output_dir, args.overrides)
    summary = train_sr_teacher(cfg, args.features, args.blocks, progress=not args.no_progress)
    print(f"SR teacher x{summary['scale']}: validation PSNR {summary['teacher_psnr']:.2f} dB vs bicubic "
          f"{summary['bicubic_psnr']:.2f} dB ({summary['val_images']} images); saved {args.output_dir}/teacher.pt")
    return 0
