"""DRFL's SR teacher end to end on a dataset: train-sr, then make-sr-targets; PSNR against bicubic upsampling.

    python benchmarks/sr_teacher.py ../shared/data/isbi2012

Writes ``benchmarks/results/<machine>/<dataset>_sr_teacher.json``; the run and the cached targets go to
``benchmarks/runs/`` (not committed).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from dualseg.benchmark import git_commit, machine, write_result
from dualseg.engine.sr_teacher import make_sr_targets, teacher_config, train_sr_teacher

ROOT = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    name = Path(args.data).name
    run = ROOT / "runs" / f"{name}_sr_teacher"
    shutil.rmtree(run, ignore_errors=True)
    cfg = teacher_config(args.data, str(run), args.overrides)
    t0 = time.perf_counter()
    summary = train_sr_teacher(cfg, args.features, args.blocks, progress=False)
    train_minutes = (time.perf_counter() - t0) / 60
    t1 = time.perf_counter()
    targets = make_sr_targets(run / "teacher.pt", args.data, run / "targets", progress=False)
    info = machine()
    result = {
        "kind": "sr-teacher",
        "data": args.data,
        "overrides": args.overrides,
        "commit": git_commit(ROOT),
        "machine": info,
        "teacher": summary["model"],
        "epochs": summary["epoch"],
        "training_minutes": round(train_minutes, 2),
        "targets_minutes": round((time.perf_counter() - t1) / 60, 2),
        "targets": len(list(targets.glob("*.npy"))),
        "val_images": summary["val_images"],
        "psnr_note": "mean PSNR (dB) over the validation images at [0, 1] intensities, x2 from area-downsampled input",
        "teacher_psnr": summary["teacher_psnr"],
        "bicubic_psnr": summary["bicubic_psnr"],
        "gain_db": round(summary["teacher_psnr"] - summary["bicubic_psnr"], 3),
    }
    write_result(ROOT / "results", info, f"{name}_sr_teacher", result)


if __name__ == "__main__":
    main()
