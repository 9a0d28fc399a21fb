"""``dualseg demo [--data DIR] [--minutes M]``: a short real run end to end on the ISBI 2012 sample shipped in the
package - train for a time budget, evaluate, predict, report - then where each output is and what to run next."""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from dualseg.errors import DualsegError

TRAIN_MINUTES = 2.5
# Budget set by time, not epochs: epochs are capped but training stops at train.time_limit_min (after that epoch's
# checkpoint), so a slower machine trains fewer epochs and still finishes; the poly schedule runs over the time
# budget (train.schedule.horizon: time), so the learning rate reaches zero when the budget does on any machine.
DEMO_CONFIG = {
    "name": "demo",
    "model": {"name": "unet", "args": {"channels": [16, 32, 64, 128, 256]}},
    "data": {"patch_size": [256, 256]},
    "train": {"epochs": 100, "batch_size": 4, "iters_per_epoch": 12, "optimizer": {"lr": 0.003},
              "schedule": {"name": "poly", "horizon": "time"}, "early_stopping": 12},
}
DESCRIPTION = (
    "Train a small U-Net on the ISBI 2012 sample shipped with dualseg (30 electron-microscopy images with membrane "
    "masks: 24 train, 6 validation), evaluate it on the validation images, predict their masks with overlays and "
    "write an HTML report. About 3-5 minutes on a 2-core CPU: training stops after the epoch that reaches "
    "--minutes (2.5) of training time, whatever the machine's speed; evaluation, prediction and the report follow "
    "(under a minute on an idle machine). "
    "Needs no download; --data DIR takes any folder with images/ and masks/."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train + evaluate + predict + report on the embedded ISBI 2012 sample (3-5 min)",
                       description=DESCRIPTION)
    p.add_argument("--data", default=None,
                   help="dataset folder with images/ and masks/ (default: the embedded ISBI 2012 sample)")
    p.add_argument("--output-dir", default=None,
                   help="run directory (default: runs/demo, or runs/demo-2, ... when that holds a run)")
    p.add_argument("--minutes", type=float, default=TRAIN_MINUTES,
                   help=f"training time budget in minutes ({TRAIN_MINUTES:g}); the run stops after the epoch that "
                   "reaches it")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the demo's config, as for 'dualseg train' (e.g. train.precision=fp32)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def free_run_dir(base: str = "runs/demo") -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that holds no run yet (the demo can be run again)."""
    candidate, n = Path(base), 1
    while (candidate / "checkpoints").exists():
        n += 1
        candidate = Path(f"{base}-{n}")
    return candidate


def prediction_inputs(data: Path, run_dir: Path) -> list[Path]:
    """The dataset's unlabeled test images if it has them, else the run's validation images."""
    from dualseg.inference.inputs import list_inputs

    unlabeled = data / "test_images_unlabeled"
    if unlabeled.is_dir():
        return list_inputs(unlabeled)
    val = set(json.loads((run_dir / "split.json").read_text())["val"])
    return [p for p in list_inputs(data / "images") if p.stem in val]


def run(args: argparse.Namespace) -> int:
    from dualseg.config import apply_overrides, config_from_dict
    from dualseg.data.sample import sample_data_path
    from dualseg.deploy.predict import predict_folder
    from dualseg.engine.run_evaluation import evaluate_run
    from dualseg.engine.trainer import train
    from dualseg.report.build import build_report
    from dualseg.report.curves import CurvesCallback
    from dualseg.report.summary_text import format_summary

    started = time.perf_counter()
    data = Path(args.data) if args.data else sample_data_path("isbi2012")
    if not data.is_dir():
        raise DualsegError(f"dataset folder not found: {data}; pass --data PATH (a folder with images/ and masks/) "
                           "or leave --data out to use the embedded sample")
    if args.minutes <= 0:
        raise DualsegError(f"--minutes must be > 0, got {args.minutes}")
    out = Path(args.output_dir) if args.output_dir else free_run_dir()
    base = copy.deepcopy(DEMO_CONFIG)
    base.update(output_dir=str(out))
    base["data"]["root"] = str(data)
    base["train"]["time_limit_min"] = args.minutes
    cfg = config_from_dict(apply_overrides(base, args.overrides))
    progress = not args.no_progress

    print(f"[1/4] training {cfg.model.name} on {data} for {cfg.train.time_limit_min:g} min -> {out}", flush=True)
    state = train(cfg, progress=progress, callbacks=[CurvesCallback()])
    print(f"[2/4] evaluating the best checkpoint (epoch {state['best_epoch']}) on the validation split", flush=True)
    summary, eval_dir = evaluate_run(out, "val", progress=progress)
    print(format_summary(summary))
    inputs = prediction_inputs(data, out)
    pred_dir = out / "predictions"
    print(f"[3/4] predicting {len(inputs)} image(s) -> {pred_dir}", flush=True)
    predict_folder(out, inputs, pred_dir, progress=False)
    print("[4/4] writing the report", flush=True)
    report = build_report([out], out / "report", split="val", names=["demo"], title="dualseg demo")

    dice = summary["per_class"]
    shown = ", ".join(f"{name} {v['dice']['mean']:.3f}" for name, v in dice.items() if v["dice"]["mean"] is not None)
    print(f"\ndone in {(time.perf_counter() - started) / 60:.1f} min ({state['epoch']} epochs, "
          f"{state['train_seconds'] / 60:.1f} min of training); Dice on {summary['n_images']} validation images: "
          f"{shown}")
    rows = [
        ("run directory", out),
        ("training curves", f"{out / 'curves.png'}  (per epoch: {out / 'metrics.csv'})"),
        ("metrics", f"{eval_dir / 'summary.json'}, {eval_dir / 'per_image.csv'}"),
        ("masks, overlays", f"{pred_dir}/, {pred_dir / 'overlays'}/"),
        ("HTML report", report["html"]),
    ]
    for label, where in rows:
        print(f"  {label:<16} {where}")
    print("next:")
    for command, what in (
        (f"dualseg predict {out} IMAGES_DIR OUT_DIR", "masks + overlays for your own images"),
        (f"dualseg export {out} --format package -o demo_model", "a self-contained model package"),
        (f"tensorboard --logdir {out / 'tensorboard'}", "the training curves, live"),
        ("dualseg fetch-data --list", "the full public datasets (ISBI 2012, DRIVE, ...)"),
        ("dualseg train configs/isbi2012/unet.yaml --set data.root=DIR", "the full ISBI 2012 recipe"),
    ):
        print(f"  {command:<64} {what}")
    return 0
