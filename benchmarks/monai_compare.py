"""dualseg's baselines against MONAI's implementations of the same architectures, side by side in one process.

    python benchmarks/monai_compare.py                       # fp32, 256x256 grey-scale, 2 classes
    python benchmarks/monai_compare.py --repeats 21 --bf16   # bf16 autocast + channels_last (dualseg's defaults)

Pairs (same widths 32-64-128-256-512, depth 4, BatchNorm + ReLU on both sides):

* ``unet`` vs MONAI ``BasicUNet`` (max-pool + two convs per level, transposed-conv up-sampling: the same design);
* ``unet`` vs MONAI ``UNet`` with 2 residual units per level (strided convolutions instead of max-pool; a different
  design at the same widths, shown because it is MONAI's best-known U-Net);
* ``attention_unet`` vs MONAI ``AttentionUnet``;
* ``unetpp`` vs MONAI ``BasicUNetPlusPlus``.

For every pair: parameters, GMACs (one image, eval), median eval latency at batch 1 and median training step (SGD,
forward + backward + update) at batch 2. The repeats of all models are interleaved (A B C ... A B C ...) so machine
load, which on a shared machine changes from second to second, falls on every model alike; the ratio is
dualseg / MONAI of the medians (<= 1: dualseg no slower), and ``paired_ratio`` the median of the per-round ratios.
Writes ``benchmarks/results/<machine>/monai_compare.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import dualseg
from dualseg.benchmark import count_flops, dummy_loss, git_commit, machine, machine_tag, write_result

ROOT = Path(__file__).resolve().parent
WIDTHS = (32, 64, 128, 256, 512)


def monai_models(in_channels: int, num_classes: int) -> dict[str, Callable[[], nn.Module]]:
    from monai.networks.nets import AttentionUnet, BasicUNet, BasicUNetPlusPlus, UNet

    common = {"spatial_dims": 2, "in_channels": in_channels, "out_channels": num_classes}
    basic = {"features": (*WIDTHS, WIDTHS[0]), "norm": "batch", "act": "relu"}
    return {
        "monai.BasicUNet": lambda: BasicUNet(**common, **basic),
        "monai.UNet(res_units=2)": lambda: UNet(**common, channels=WIDTHS, strides=(2, 2, 2, 2), num_res_units=2,
                                                norm="batch", act="relu"),
        "monai.AttentionUnet": lambda: AttentionUnet(**common, channels=WIDTHS, strides=(2, 2, 2, 2)),
        "monai.BasicUNetPlusPlus": lambda: BasicUNetPlusPlus(**common, **basic),
    }


PAIRS = (
    ("unet", "monai.BasicUNet", "same design: max-pool + 2 convs per level, transposed-conv up-sampling; MONAI's "
     "last up-sampling keeps 64 channels (dualseg halves to 32) and its convs have biases before BatchNorm"),
    ("unet", "monai.UNet(res_units=2)", "different design at the same widths: strided 3x3 convs instead of "
     "max-pool, residual units, a 3x3 transposed conv + one residual unit per decoder level (about 4x fewer MACs); "
     "norm=batch, act=relu set to match"),
    ("attention_unet", "monai.AttentionUnet", "MONAI: strided-conv down-sampling, 3x3 transposed-conv up-sampling "
     "and one 3x3 conv per decoder level, gate from the up-sampled map; dualseg (Oktay et al. on Ronneberger's "
     "U-Net): max-pool, 2x2 transposed conv, two 3x3 convs per decoder level, gate from the coarser decoder map"),
    ("unetpp", "monai.BasicUNetPlusPlus", "same nested design; MONAI's column-0 up-sampling keeps 64 channels at "
     "level 0 and its convs have biases before BatchNorm"),
)


def build(name: str, in_channels: int, num_classes: int) -> nn.Module:
    if name.startswith("monai."):
        return monai_models(in_channels, num_classes)[name]()
    return dualseg.create_model(name, in_channels=in_channels, num_classes=num_classes, channels=WIDTHS)


def timed(fn: Callable[[str], Any], name: str) -> float:
    t0 = time.perf_counter()
    fn(name)
    return time.perf_counter() - t0


def measure(names: list[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Params, GMACs and interleaved eval/train timings of every model in ``names``."""
    h, w = args.size
    gen = torch.Generator().manual_seed(0)
    x_eval = torch.randn(1, args.in_channels, h, w, generator=gen)
    x_train = torch.randn(2, args.in_channels, h, w, generator=gen)
    dtype = torch.bfloat16 if args.bf16 else None
    fmt = torch.channels_last if args.bf16 else torch.contiguous_format
    if args.bf16:
        x_eval, x_train = (t.contiguous(memory_format=fmt) for t in (x_eval, x_train))
    models, optimizers, out = {}, {}, {}
    for name in names:
        torch.manual_seed(0)
        model = build(name, args.in_channels, args.num_classes)
        out[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "gmacs": count_flops(model.eval(), x_eval.contiguous()) / 2e9,
            "eval_ms": [],
            "train_step_ms": [],
        }
        models[name] = model.to(memory_format=fmt)
        optimizers[name] = torch.optim.SGD(model.parameters(), lr=1e-6)

    def forward(name: str) -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            models[name](x_eval)

    def step(name: str) -> None:
        optimizers[name].zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = dummy_loss(models[name](x_train))
        loss.backward()
        optimizers[name].step()

    for name in names:
        models[name].eval()
    for r in range(args.warmup + args.repeats):
        for name in names:  # interleaved: one repeat of each model per round
            t = timed(forward, name)
            if r >= args.warmup:
                out[name]["eval_ms"].append(t * 1e3)
    for name in names:
        models[name].train()
    for r in range(args.warmup + args.repeats):
        for name in names:
            t = timed(step, name)
            if r >= args.warmup:
                out[name]["train_step_ms"].append(t * 1e3)
    return out


def pair_rows(measured: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for ours, theirs, note in PAIRS:
        a, b = measured[ours], measured[theirs]
        row: dict[str, Any] = {"dualseg": ours, "monai": theirs, "note": note,
                               "params": [a["params"], b["params"]], "gmacs": [round(a["gmacs"], 3),
                                                                              round(b["gmacs"], 3)]}
        for key in ("eval_ms", "train_step_ms"):
            med_a, med_b = statistics.median(a[key]), statistics.median(b[key])
            row[key] = [round(med_a, 2), round(med_b, 2)]
            row[f"{key}_ratio"] = round(med_a / med_b, 3)
            row[f"{key}_paired_ratio"] = round(statistics.median(x / y for x, y in zip(a[key], b[key])), 3)
            row[f"{key}_per_gmac_ratio"] = round(med_a / a["gmacs"] / (med_b / b["gmacs"]), 3)
        rows.append(row)
    return rows


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [
        "# dualseg vs MONAI: same architectures, one process, interleaved repeats",
        "",
        f"Machine: {m['cpu']}, {m['cores']} threads (benchmark ran with {record['threads_used']}), "
        f"torch {m['torch']}, MONAI {record['monai']}; "
        f"{record['precision']}; input {record['input']}; eval batch 1, training step (SGD) batch 2; "
        f"{record['repeats']} repeats after {record['warmup']} warm-up rounds, medians. Commit {record['commit']}.",
        "",
        f"Command: `{record['command']}`",
        "",
        record["load_note"],
        "",
        "Ratio = dualseg / MONAI (<= 1: dualseg no slower); paired = median of the per-round ratios; per GMAC = "
        "the ratio of time per multiply-add (separates implementation speed from the amount of arithmetic).",
        "",
        "| dualseg | MONAI | params (d / M) | GMACs (d / M) | eval ms (d / M) | eval ratio (paired; per GMAC) "
        "| train step ms (d / M) | train ratio (paired; per GMAC) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in record["pairs"]:
        lines.append(
            f"| `{r['dualseg']}` | `{r['monai']}` | {r['params'][0] / 1e6:.2f}M / {r['params'][1] / 1e6:.2f}M "
            f"| {r['gmacs'][0]:.2f} / {r['gmacs'][1]:.2f} | {r['eval_ms'][0]:.1f} / {r['eval_ms'][1]:.1f} "
            f"| **{r['eval_ms_ratio']:.2f}** ({r['eval_ms_paired_ratio']:.2f}; {r['eval_ms_per_gmac_ratio']:.2f}) "
            f"| {r['train_step_ms'][0]:.1f} / {r['train_step_ms'][1]:.1f} "
            f"| **{r['train_step_ms_ratio']:.2f}** ({r['train_step_ms_paired_ratio']:.2f}; "
            f"{r['train_step_ms_per_gmac_ratio']:.2f}) |"
        )
    lines += ["", "Structural differences that remain:", ""]
    lines += [f"- `{r['dualseg']}` vs `{r['monai']}`: {r['note']}." for r in record["pairs"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast + channels_last on both sides")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: PyTorch's); 1 gives steadier timings on a loaded machine")
    p.add_argument("--name", default=None, help="result file name (default monai_compare[_bf16])")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the machine, for the record
    info = machine()  # before --threads: the machine's own thread count names the results folder
    if args.threads:
        torch.set_num_threads(args.threads)
    import monai

    names = list(dict.fromkeys(n for pair in PAIRS for n in pair[:2]))
    measured = measure(names, args)
    record = {
        "machine": info,
        "threads_used": torch.get_num_threads(),
        "monai": monai.__version__,
        "commit": git_commit(ROOT.parent),
        "command": "python benchmarks/monai_compare.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "precision": "bf16 autocast + channels_last" if args.bf16 else "fp32, NCHW",
        "input": f"{args.in_channels}x{args.size[0]}x{args.size[1]}, {args.num_classes} classes",
        "repeats": args.repeats,
        "warmup": args.warmup,
        "load_note": f"1-minute load average before the run: {load_before:.2f} on {os.cpu_count()} logical CPUs. "
                     "The repeats of all models were interleaved so that any load falls on each alike; medians and "
                     "ratios are reported.",
        "pairs": pair_rows(measured),
        "raw": measured,
    }
    name = args.name or ("monai_compare_bf16" if args.bf16 else "monai_compare")
    path = write_result(ROOT / "results", info, name, record)
    (ROOT / "results" / machine_tag(info) / f"{name}.md").write_text(markdown(record))
    print(markdown(record))
    print(f"wrote {path} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
