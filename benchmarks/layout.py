"""Memory layout: NCHW against channels_last (NHWC) for the convolutional models, fp32, at their papers' input sizes.

    python benchmarks/layout.py [--models unet,attention_unet] [--repeats 3]

Training runs in channels_last by default (``train.channels_last``) and inference follows the run's setting
(``InputSpec.channels_last``, stored in checkpoints and packages; older packages load NHWC). This measures what
that choice is worth: each model is benchmarked in both layouts, one after the other (order alternating from
model to model), with ``dualseg.benchmark.benchmark_model``. Writes ``benchmarks/results/<machine>/layout.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from dualseg.benchmark import benchmark_model, git_commit, machine, machine_tag

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from models import SETTINGS  # noqa: E402  (the papers' input sizes, as in models.py)

# one setting per model (the EFEN row without attention: its timing is dominated by the attention kernels)
ROWS = {"unet": 0, "attention_unet": 0, "unetpp": 0, "deeplabv3plus": 0, "drfl": 0, "ds2f_unet": 2, "efen": 0,
        "danie_s": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ROWS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for k, name in enumerate(n.strip() for n in args.models.split(",")):
        model_args, size, channels = SETTINGS[name][ROWS.get(name, 0)]
        pair = {}
        for channels_last in (False, True) if k % 2 == 0 else (True, False):
            r = benchmark_model(name, input_size=size, in_channels=channels, model_args=model_args,
                                channels_last=channels_last, warmup=2, repeats=args.repeats)
            pair["nhwc" if channels_last else "nchw"] = r
            print(f"{name} {'NHWC' if channels_last else 'NCHW'}: {r['latency_ms']:.1f} ms, "
                  f"{r['train_images_per_s']:.2f} train img/s", file=sys.stderr, flush=True)
        results.append({"model": name, "model_args": model_args, "input": [channels, *size], **pair})
    info = machine()
    info["gpu"] = None
    record = {"kind": "layout", "commit": git_commit(ROOT), "machine": info, "repeats": args.repeats,
              "results": results}
    out = ROOT / "results" / machine_tag(info)
    out.mkdir(parents=True, exist_ok=True)
    (out / "layout.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        "# Memory layout: NCHW vs channels_last (NHWC)",
        "",
        f"CPU, fp32, {torch.get_num_threads()} threads, torch {torch.__version__}; eval latency at batch 1 (median of "
        f"{args.repeats}) and training images/s (batch 2 SGD steps). Produced by `python benchmarks/layout.py`.",
        "",
        "| model | args | input | eval ms NCHW | eval ms NHWC | eval speed-up | train img/s NCHW | train img/s NHWC "
        "| train speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a, b = r["nchw"], r["nhwc"]
        margs = ", ".join(f"{k}={v}" for k, v in r["model_args"].items()) or "-"
        lines.append(
            f"| {r['model']} | {margs} | {'x'.join(map(str, r['input']))} | {a['latency_ms']:.1f} "
            f"| {b['latency_ms']:.1f} | {a['latency_ms'] / b['latency_ms']:.2f} | {a['train_images_per_s']:.2f} "
            f"| {b['train_images_per_s']:.2f} | {b['train_images_per_s'] / a['train_images_per_s']:.2f} |"
        )
    (out / "layout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
