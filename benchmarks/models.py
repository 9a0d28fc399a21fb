"""Cost of every registered model at the input size its paper uses: parameters, GMACs, latency, throughput, memory.

    python benchmarks/models.py                         # every registered model (and DRFL's variants)
    python benchmarks/models.py --models unet,unetpp --repeats 3
    python benchmarks/models.py --device cuda --batch 8

Writes ``benchmarks/results/<machine>/models.json`` (all figures, see ``dualseg.benchmark.benchmark_model``) and
``benchmarks/results/<machine>/models.md``: the table, then every cost table of the four papers (DRFL Tables 4 and 8,
DS2F Table VII, EFEN Table 3, DANIE Tables 1, 4, 5 and 7) with our figures beside theirs (``paper_figures.py``;
rows not timed in this run are counted; ``--no-papers`` skips them). Names in the table below that are not
registered are skipped, so the script runs before and after a method lands; registered names not in the table get
the default.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

import dualseg
from dualseg.benchmark import benchmark_model, describe_device, git_commit, machine, machine_tag
from dualseg.errors import DualsegError
from dualseg.runtime import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_figures  # noqa: E402  (a sibling script's module)

ROOT = Path(__file__).resolve().parent

# (model_args, (H, W), in_channels) per setting, as in each paper's medical-image experiments; 256x256 grey-scale
# unless stated. DRFL (Xu et al., EAAI 2023): 256 px inputs, the "paper" preset, one row per ablation variant,
# and the full model with the "released" preset.
# DS2F (Qiu et al., TPAMI 2023): RGB fundus patches, a 128x128 low-resolution input predicted at 256x256 (upscale 2);
# rows for the plain backbone (sr_stream=False), + SR stream, and the full model: eval cost must be equal.
# DANIE (paper 003): 224x224 RGB-shaped inputs (Section 3.2: H x W x 3; Synapse/ACDC slices are resized to 224).
DEFAULT: tuple[dict[str, Any], tuple[int, int], int] = ({}, (256, 256), 1)
DRFL_VARIANTS = ("ss", "ss_srs", "ss_srs_rftm", "dfm", "dfm_rftm", "drfl", "drfl_cbam")
DS2F_ROWS = ({"upscale": 2, "sr_stream": False}, {"upscale": 2, "sfem": "none"}, {"upscale": 2})
SETTINGS: dict[str, list[tuple[dict[str, Any], tuple[int, int], int]]] = {
    "unet": [DEFAULT],
    "attention_unet": [DEFAULT],
    "unetpp": [DEFAULT],
    "deeplabv3plus": [DEFAULT],
    "drfl": [({"variant": v, "preset": "paper"}, (256, 256), 1) for v in DRFL_VARIANTS]
    + [({"variant": "drfl", "preset": "released"}, (256, 256), 1)],  # the authors' 12-block RFTM
    "ds2f_unet": [(args, (128, 128), 3) for args in DS2F_ROWS],
    "ds2f_deeplabv3plus": [(args, (128, 128), 3) for args in DS2F_ROWS],
    # EFEN (Applied Sciences 2023): CVC-ClinicDB frames 384x288 RGB, one row per Table 1 variant
    "efen": [({"variant": v}, (288, 384), 3) for v in ("unet", "unet_process1", "efen")],
    # DANIE (paper Tables 1/4-5/7): 224x224
    "danie_s": [({"img_size": 224}, (224, 224), 3)],
    "danie_l": [({"img_size": 224}, (224, 224), 3)],
}


def plan(names: list[str] | None) -> list[tuple[str, dict[str, Any], tuple[int, int], int]]:
    """(name, model_args, size, in_channels) for each requested model that is registered."""
    registered = dualseg.list_models()
    if names is None:
        names = registered
    else:
        for n in names:
            if n not in registered:
                print(f"skipping '{n}': not registered (known: {', '.join(registered)})", file=sys.stderr)
        names = [n for n in names if n in registered]
    return [(n, args, size, ch) for n in names for args, size, ch in SETTINGS.get(n, [DEFAULT])]


def markdown(results: list[dict[str, Any]], device: str, batch: int, repeats: int) -> str:
    on_gpu = not device.startswith("cpu")
    lines = [
        "# Model cost",
        "",
        f"Device: {device}; torch {torch.__version__}; batch {batch}, median of {repeats} timed runs. "
        "Produced by `python benchmarks/models.py`.",
        "GMACs are multiply-accumulates for ONE image (1 MAC = 2 FLOPs; torch.utils.flop_counter counts FLOPs of "
        "matmul/convolution/attention only); 'eval' is the inference forward, 'train' the train-mode forward "
        "(dual-stream models run extra streams). Latency: eval forward at the batch. Train img/s: full SGD steps "
        "(batch >= 2 with BatchNorm). Peak memory (MB, eval / train): "
        + ("torch.cuda.max_memory_allocated." if on_gpu else "increase of the process's peak RSS (CPU)."),
        "",
        "| model | args | input | params (M) | GMACs eval | GMACs train | latency ms | train img/s | peak memory MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        args = ", ".join(f"{k}={v}" for k, v in r["model_args"].items()) or "-"
        if "error" in r:
            lines.append(f"| {r['model']} | {args} | {r['input']} | error: {r['error']} | | | | | |")
            continue
        h, w = r["input_size"]
        mem = r["peak_memory_mb"]
        lines.append(
            f"| {r['model']} | {args} | {r['in_channels']}x{h}x{w} | {r['params'] / 1e6:.2f} | {r['gmacs']:.2f} "
            f"| {r['gmacs_train']:.2f} | {r['latency_ms']:.1f} ± {r['latency_ms_std']:.1f} "
            f"| {r['train_images_per_s']:.2f} | {mem['eval']:.0f} / {mem['train']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma-separated names (default: every registered model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--name", default="models", help="result file stem (results/<machine>/<name>.json/.md)")
    parser.add_argument("--no-papers", action="store_true", help="leave out the tables of the papers' figures")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else None

    device = resolve_device(args.device)
    info = machine()
    if device.type == "cpu":
        info["gpu"] = None  # a CPU run on a GPU machine is filed under the CPU
    results: list[dict[str, Any]] = []
    for name, model_args, size, channels in plan(names):
        print(f"benchmarking {name} {json.dumps(model_args)} {size[0]}x{size[1]} ...", file=sys.stderr, flush=True)
        try:
            r = benchmark_model(name, input_size=size, batch=args.batch, in_channels=channels, device=device,
                                model_args=model_args, warmup=args.warmup, repeats=args.repeats)
        except (DualsegError, RuntimeError) as e:  # record and go on: one broken model must not hide the others
            traceback.print_exc()
            results.append({"model": name, "model_args": model_args, "input": f"{channels}x{size[0]}x{size[1]}",
                            "error": f"{type(e).__name__}: {e}".splitlines()[0]})
            continue
        print(f"  {r['params'] / 1e6:.2f} M params, {r['gmacs']:.2f} GMACs, {r['latency_ms']:.1f} ms, "
              f"{r['train_images_per_s']:.2f} train img/s", file=sys.stderr, flush=True)
        results.append(r)

    papers = [] if args.no_papers else paper_figures.compare(results)
    out_dir = ROOT / "results" / machine_tag(info)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"kind": "model-cost", "commit": git_commit(ROOT), "machine": info, "batch": args.batch,
              "repeats": args.repeats, "warmup": args.warmup, "results": results, "papers": papers}
    (out_dir / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    table = markdown(results, describe_device(device), args.batch, args.repeats)
    if papers:
        table += "\n" + paper_figures.markdown(papers)
    (out_dir / f"{args.name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    try:
        main()
    except DualsegError as e:
        sys.exit(f"error: {e}")
