"""``dualseg demo [--data PATH]``: a short real run end to end - train, evaluate, predict - in a few minutes on CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from dualseg.errors import DualsegError

DEMO_CONFIG = {
    "name": "demo",
    "model": {"name": "unet", "args": {"channels": [16, 32, 64, 128, 256]}},
    "data": {"patch_size": [256, 256]},
    "train": {"epochs": 6, "batch_size": 4, "iters_per_epoch": 12, "optimizer": {"lr": 0.003},
              "schedule": {"name": "poly"}},
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="short real training + evaluation + prediction (ISBI 2012 by default)")
    p.add_argument("--data", default="../shared/data/isbi2012", help="dataset folder with images/ and masks/")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("--epochs", type=int, default=6)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.engine.config import config_from_dict
    from dualseg.engine.evaluator import evaluate_run, format_summary
    from dualseg.engine.trainer import train
    from dualseg.inference.predict import predict_folder

    data = Path(args.data)
    if not data.is_dir():
        raise DualsegError(f"dataset folder not found: {data}; pass --data PATH (a folder with images/ and masks/)")
    cfg = config_from_dict({**DEMO_CONFIG, "output_dir": args.output_dir,
                            "data": {**DEMO_CONFIG["data"], "root": str(data)},
                            "train": {**DEMO_CONFIG["train"], "epochs": args.epochs}})
    print(f"[1/3] training unet on {data} for {args.epochs} short epochs -> {args.output_dir}")
    train(cfg)
    print("[2/3] evaluating the best checkpoint on the validation split")
    summary, out = evaluate_run(args.output_dir, "val")
    print(format_summary(summary))
    unlabeled = data / "test_images_unlabeled"
    inputs = unlabeled if unlabeled.is_dir() else data / "images"
    pred_dir = Path(args.output_dir) / "predictions"
    print(f"[3/3] predicting {inputs} -> {pred_dir} (masks + overlays/)")
    written = predict_folder(args.output_dir, inputs, pred_dir)
    print(f"done: {len(written)} masks; metrics in {out / 'summary.json'}; curves: tensorboard --logdir "
          f"{Path(args.output_dir) / 'tensorboard'}")
    return 0
