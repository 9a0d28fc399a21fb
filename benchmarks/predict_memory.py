"""Peak memory and time of predicting one fundus-size image (3504x2336 RGB, as HRF/IDRiD) on the CPU.

    python benchmarks/predict_memory.py                       # sliding-window rows (512x512 windows)
    python benchmarks/predict_memory.py --whole-image         # adds a one-pass row for comparison (several GB)
    python benchmarks/predict_memory.py --tta                 # adds a flip-TTA row

Each row runs ``dualseg predict`` in its own subprocess on a synthetic image (smooth random RGB, fixed seed) with
a small-width U-Net package (random weights: memory and time do not depend on the weights) and records the peak
resident set size of that process (``ru_maxrss`` from ``wait4``), its wall time and the import/model baseline
(a process that only imports the prediction code and loads the package). Writes
``benchmarks/results/<machine>/predict_memory.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import dualseg
from dualseg.benchmark import describe_device, git_commit, machine, machine_tag
from dualseg.data.descriptions import get_description
from dualseg.deploy.package import save_package
from dualseg.inference.loading import LoadedModel
from dualseg.inference.spec import InputSpec

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
SIZE = (2336, 3504)  # H, W of HRF / IDRiD fundus photographs
CHANNELS = (16, 32, 64, 128, 256)
BASELINE = "import dualseg, dualseg.deploy.predict, monai.inferers; dualseg.load_model({path!r})"


def synthetic_fundus(path: Path, seed: int = 0) -> None:
    """Smooth random RGB texture (upsampled noise) at the fundus size, 8-bit PNG."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((1, 3, SIZE[0] // 16, SIZE[1] // 16), dtype=np.float32))
    big = torch.nn.functional.interpolate(small, size=SIZE, mode="bilinear", align_corners=False)[0]
    Image.fromarray((big.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)


def measure(command: list[str], threads: int) -> dict[str, float]:
    """Peak RSS (MiB) and wall time (s) of one subprocess."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    err = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {err.strip()[-500:]}")
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "seconds": seconds}


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# Predicting one {SIZE[1]}x{SIZE[0]} RGB image on the CPU: peak memory and time",
        "",
        f"Machine: {record['device']}; torch {record['machine']['torch']}, precision "
        f"`{record['machine']['precision']}` (the package's `auto`); commit {record['commit']}. Model: `unet` "
        f"channels {list(CHANNELS)} ({record['params_m']:.2f} M parameters, random weights), 2 classes. Each row is "
        "one `dualseg predict` subprocess (read image, normalise, predict, write mask and overlay); peak RSS = "
        "`ru_maxrss` of that process. Baseline = a process that only imports the prediction code and loads the "
        f"package: {record['baseline']['peak_rss_mib']:.0f} MiB. Wall times are on a shared machine (indicative).",
        "",
        "| mode | window | overlap | windows per pass | TTA | peak RSS (MiB) | above baseline (MiB) | time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = record["baseline"]["peak_rss_mib"]
    for r in record["results"]:
        window = "whole image" if r["roi_size"] is None else f"{r['roi_size'][0]}x{r['roi_size'][1]}"
        lines.append(
            f"| {r['mode']} | {window} | {r['overlap'] if r['roi_size'] else '-'} | "
            f"{r['sw_batch_size'] if r['roi_size'] else '-'} | {'yes' if r['tta'] else 'no'} | "
            f"{r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - base:.0f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--whole-image", action="store_true", help="also predict in one pass (needs several GB)")
    parser.add_argument("--tta", action="store_true", help="also a flip-TTA row (four times the compute)")
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = [
        {"mode": "sliding window", "roi_size": [512, 512], "overlap": 0.5, "sw_batch_size": 4, "tta": False},
        {"mode": "sliding window", "roi_size": [512, 512], "overlap": 0.25, "sw_batch_size": 1, "tta": False},
    ]
    if args.tta:
        rows.append({"mode": "sliding window + TTA", "roi_size": [512, 512], "overlap": 0.25, "sw_batch_size": 1,
                     "tta": True})
    if args.whole_image:
        rows.append({"mode": "one pass", "roi_size": None, "overlap": None, "sw_batch_size": None, "tta": False})
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        synthetic_fundus(work / "fundus.png")
        model = dualseg.create_model("unet", in_channels=3, num_classes=2, channels=CHANNELS).eval()
        package = save_package(LoadedModel(model, InputSpec(), get_description("drive"), info={
            "model_name": "unet", "model_args": {"channels": list(CHANNELS)}}), work / "package")
        baseline = measure([sys.executable, "-c", BASELINE.format(path=str(package))], args.threads)
        for row in rows:
            command = [sys.executable, "-m", "dualseg", "predict", str(package), str(work / "fundus.png"),
                       str(work / "out"), "--device", "cpu", "--no-progress"]
            if row["roi_size"] is None:
                command += ["--whole-image"]
            else:
                command += ["--roi-size", *map(str, row["roi_size"]), "--overlap", str(row["overlap"]),
                            "--sw-batch-size", str(row["sw_batch_size"])]
            if row["tta"]:
                command += ["--tta"]
            print(f"{row['mode']} {row['roi_size']} ...", file=sys.stderr, flush=True)
            row.update(measure(command, args.threads))
            print(f"  {row['peak_rss_mib']:.0f} MiB, {row['seconds']:.1f} s", file=sys.stderr, flush=True)
            assert Image.open(work / "out" / "fundus.png").size == (SIZE[1], SIZE[0])

    info = machine()
    info["cores"] = args.threads
    record = {
        "kind": "predict-memory", "commit": git_commit(ROOT), "machine": info,
        "device": describe_device(torch.device("cpu")), "image": [SIZE[0], SIZE[1], 3], "model": "unet",
        "model_args": {"channels": list(CHANNELS)}, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "baseline": baseline, "results": rows,
    }
    out_dir = ROOT / "results" / machine_tag(info)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "predict_memory.json").write_text(json.dumps(record, indent=1) + "\n")
    table = markdown(record)
    (out_dir / "predict_memory.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
