"""``dualseg train CONFIG [--set KEY=VALUE ...] [--resume [--force]]``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=5 --set data.root=/data/drive")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from checkpoints/last.pt")
    p.add_argument("--force", action="store_true", help="with --resume: accept a changed config")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.config import load_config
    from dualseg.engine.distributed import is_main_process
    from dualseg.engine.trainer import train
    from dualseg.report.curves import CurvesCallback

    cfg = load_config(args.config, args.overrides)
    state = train(cfg, resume=args.resume, force=args.force, progress=not args.no_progress,
                  callbacks=[CurvesCallback()])
    if is_main_process():
        print(f"done: {state['epoch']} epochs in {state['train_seconds'] / 60:.1f} min; best {cfg.train.monitor} "
              f"{state['best']:.4f} at epoch {state['best_epoch']}; run directory {cfg.output_dir}")
    return 0
