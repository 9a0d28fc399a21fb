"""Accuracy-within-a-time-budget benchmark: train a shipped config, evaluate it, record the figures and the machine.

    python benchmarks/train_accuracy.py configs/isbi2012/unet.yaml --split val
    python benchmarks/train_accuracy.py configs/drive/unet.yaml --split test

Writes ``benchmarks/results/<machine>/<config-name>.json``; ``python benchmarks/summarize.py`` collects them into
``benchmarks/RESULTS.md``. The run directory is ``benchmarks/runs/<config-name>`` (not committed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from dualseg.benchmark import git_commit, machine, write_result
from dualseg.config import load_config
from dualseg.engine.run_evaluation import evaluate_run
from dualseg.engine.trainer import train
from dualseg.report.curves import CurvesCallback

ROOT = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--split", default="val")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tag", default="", help="suffix of the result name, for runs of one config with overrides")
    args = parser.parse_args()
    name = Path(args.config).parent.name + "_" + Path(args.config).stem + (f"_{args.tag}" if args.tag else "")
    run_dir = ROOT / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = load_config(args.config, [*args.overrides, f"output_dir={run_dir}"])
    info = machine()
    commit = git_commit(ROOT)  # the code the run starts from (HEAD may move while it trains)
    load_start = os.getloadavg()  # the machine may be shared: record how busy it was
    t0 = time.perf_counter()
    state = train(cfg, progress=False, callbacks=[CurvesCallback()])
    wall = time.perf_counter() - t0
    summary, _ = evaluate_run(run_dir, args.split, progress=False)
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "commit": commit,
        "machine": info,
        "load_average_1_5_15min": {"start": [round(x, 2) for x in load_start],
                                   "end": [round(x, 2) for x in os.getloadavg()]},
        "training_minutes": round(state["train_seconds"] / 60, 2),
        "wall_minutes_incl_setup": round(wall / 60, 2),
        "epochs": state["epoch"],
        "best_epoch": state["best_epoch"],
        "split": args.split,
        "n_images": summary["n_images"],
        "fov": summary.get("fov", False),
        "convention": summary["convention"],
        "mean": summary["mean"],
        "std": summary["std"],
        "per_class_dice": {c: v["dice"]["mean"] for c, v in summary["per_class"].items()},
        "per_class_dice_std": {c: v["dice"]["std"] for c, v in summary["per_class"].items()},
        "dataset_level_dice": {c: v["dice"] for c, v in summary["dataset_level"]["per_class"].items()},
    }
    write_result(ROOT / "results", info, name, result)


if __name__ == "__main__":
    main()
