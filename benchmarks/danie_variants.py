"""Parameters and GMACs of DANIE's ablation variants (paper 003, Tables 5-7) beside the paper's GFLOPs.

    python benchmarks/danie_variants.py [--model danie_l] [--size 224] [--in-channels 3]

Counts only (no timing): torch.utils.flop_counter on one eval forward (matmul/convolution/attention FLOPs, halved to
MACs). Writes ``benchmarks/results/<machine>/danie_variants.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

import dualseg
from dualseg.benchmark import count_flops, git_commit, machine, machine_tag

ROOT = Path(__file__).resolve().parent

# (row, model options, the paper's GFLOPs). Tables 5-6 use fusion=add ("simply used element-wise addition").
ROWS: list[tuple[str, dict[str, Any], float | None]] = [
    ("A.1 w/o hierarchical attention", {"streams": "sap", "fusion": "add"}, 19.06),
    ("A.2 w/o self-attention", {"streams": "hap", "fusion": "add"}, 10.98),
    ("A.3 w/o spatial att", {"spatial_attention": False, "fusion": "add"}, 22.13),
    ("A.4 w/o channel att", {"channel_attention": False, "fusion": "add"}, 23.25),
    ("A.5 / C.2 add", {"fusion": "add"}, 25.16),
    ("B.1 spatial+channel, no Dcal", {"attention_order": "spatial_first", "dynamic_calibration": False,
                                      "fusion": "add"}, None),
    ("C.1 concat+res", {"fusion": "concat_res"}, 27.88),
    ("C.3 EH+add", {"fusion": "eh_add"}, 26.53),
    ("C.4 ES+add", {"fusion": "es_add"}, 26.52),
    ("C.5 joint preservation (default)", {}, 26.55),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="danie_l")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=9)
    args = parser.parse_args()
    info = machine()
    x = torch.zeros(1, args.in_channels, args.size, args.size)
    results = []
    for row, options, paper in ROWS:
        model = dualseg.create_model(args.model, in_channels=args.in_channels, num_classes=args.num_classes,
                                     img_size=args.size, **options)
        flops = count_flops(model, x)
        results.append({"row": row, "options": options, "params": sum(p.numel() for p in model.parameters()),
                        "gmacs": flops / 2e9, "gflops": flops / 1e9, "paper_gflops": paper})
        print(f"{row}: {results[-1]['gmacs']:.2f} GMACs", flush=True)
    record = {"kind": "danie-variants", "commit": git_commit(ROOT), "machine": info, "model": args.model,
              "input": [args.in_channels, args.size, args.size], "num_classes": args.num_classes, "results": results}
    out_dir = ROOT / "results" / machine_tag(info)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "danie_variants.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        f"# DANIE ablation variants: cost ({args.model}, {args.in_channels}x{args.size}x{args.size}, "
        f"{args.num_classes} classes)",
        "",
        "Produced by `python benchmarks/danie_variants.py`; GMACs = torch.utils.flop_counter FLOPs / 2 (one eval "
        "forward). 'paper GFLOPs' from Tables 5 and 7 of the DANIE paper.",
        "",
        "| row | options | params (M) | GMACs | GFLOPs (2 x MACs) | paper GFLOPs |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
        paper = "-" if r["paper_gflops"] is None else f"{r['paper_gflops']:.2f}"
        lines.append(f"| {r['row']} | {opts} | {r['params'] / 1e6:.2f} | {r['gmacs']:.2f} | {r['gflops']:.2f} "
                     f"| {paper} |")
    (out_dir / "danie_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
