"""``dualseg train CONFIG [--set KEY=VALUE ...] [--resume [--force]]``, or ``dualseg train DATA --budget-min N
[--model M]``: plan a config for a dataset folder (``dualseg plan``) and train it."""

from __future__ import annotations

import argparse
from pathlib import Path

from dualseg.errors import DualsegError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML config (see configs/), or a dataset folder (with --budget-min)")
    p.add_argument("--budget-min", type=float, help="with a dataset folder: plan this many minutes of training on "
                                                    "this machine, then train (the plan goes into the run directory)")
    p.add_argument("--model", default="unet", help="with a dataset folder: the model to plan for (default: unet)")
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

    callbacks: list = [CurvesCallback()]
    if Path(args.config).is_dir():
        from dualseg.planning.folder import PlanFiles, plan_folder

        planned = plan_folder(args.config, args.model, args.budget_min, args.overrides, progress=not args.no_progress)
        cfg = planned.config
        callbacks.append(PlanFiles(planned))
        print(f"planned {cfg.model.name} for {args.budget_min:g} min: patch {cfg.data.patch_size}, batch "
              f"{cfg.train.batch_size}, {cfg.train.epochs} x {cfg.train.iters_per_epoch} steps (plan.yaml in the run "
              "directory)")
    elif args.budget_min is not None:
        raise DualsegError("--budget-min plans for a dataset folder; with a config use --set train.time_limit_min=N")
    else:
        cfg = load_config(args.config, args.overrides)
    state = train(cfg, resume=args.resume, force=args.force, progress=not args.no_progress, callbacks=callbacks)
    if is_main_process():
        print(f"done: {state['epoch']} epochs in {state['train_seconds'] / 60:.1f} min; best {cfg.train.monitor} "
              f"{state['best']:.4f} at epoch {state['best_epoch']}; run directory {cfg.output_dir}")
    return 0
