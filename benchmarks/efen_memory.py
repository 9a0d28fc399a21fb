"""Memory of one EFEN forward at the paper's input size (384x288, batch 2, fp32) on the CPU, per Table 1 variant.

    python benchmarks/efen_memory.py            # writes benchmarks/results/<machine>/efen_memory.{json,md}

Each measurement runs in a fresh subprocess: build the model (random init), make the input, then reset the peak
RSS to the current RSS (Linux /proc/self/clear_refs) and run one forward, ``eval`` under ``torch.no_grad()``
(inference) or ``train`` with autograd on (the activations a backward pass would need stay alive). The figure is
the increase of the process's peak resident set size (``ru_maxrss``) over the forward: activations, attention
workspaces and allocator slack, not the weights. Beside it, the size one explicit ``N x N`` fp32 attention matrix
would take for the largest attention of the model, the memory the fused attention kernel avoids.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from dualseg import create_model
from dualseg.benchmark import git_commit, machine, machine_tag, write_result
from dualseg.models.blocks.positional_skip import PositionalCrossAttentionSkip
from dualseg.models.efen import VARIANTS

ROOT = Path(__file__).resolve().parent
HEIGHT, WIDTH, BATCH = 288, 384, 2


def rss_mb() -> float:
    """Current resident set size of this process (Linux /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure_one(variant: str, mode: str) -> dict[str, float]:
    """Peak-RSS increase of one forward in this process (called in a fresh subprocess)."""
    model = create_model("efen", in_channels=3, num_classes=1, variant=variant, pretrained=False)
    model.train(mode == "train")
    x = torch.randn(BATCH, 3, HEIGHT, WIDTH)
    gc.collect()
    before = rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    t0 = time.perf_counter()
    with torch.set_grad_enabled(mode == "train"):
        out = model(x)["seg"]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    assert out.shape == (BATCH, 1, HEIGHT, WIDTH)
    return {"peak_rss_increase_mb": round(peak - before, 1), "forward_s": round(seconds, 2)}


def largest_attention(variant: str) -> dict[str, float]:
    """Tokens of the largest attention at this input size and the fp32 size of its explicit N x N matrix."""
    model = create_model("efen", in_channels=3, num_classes=1, variant=variant, pretrained=False)
    if not any(isinstance(m, PositionalCrossAttentionSkip) for m in model.modules()):
        return {"attention_tokens": 0, "explicit_attention_matrix_mb": 0.0}
    tokens = (HEIGHT // 2) * (WIDTH // 2)  # full-resolution skips attend on the op1-pooled (H/2 x W/2) grid
    return {"attention_tokens": tokens, "explicit_attention_matrix_mb": round(BATCH * tokens**2 * 4 / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "MODE"), help="internal: measure one case and print")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one)))
        return
    info = machine()
    rows = []
    for variant in args.variants:
        params = sum(p.numel() for p in create_model("efen", 3, 1, variant=variant).parameters())
        row = {"variant": variant, "params_m": round(params / 1e6, 2), **largest_attention(variant)}
        for mode in ("eval", "train"):
            cmd = [sys.executable, __file__, "--one", variant, mode]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            row[f"{mode}_peak_rss_increase_mb"] = result["peak_rss_increase_mb"]
            row[f"{mode}_forward_s"] = result["forward_s"]
            print(variant, mode, result, flush=True)
        rows.append(row)
    record = {
        "what": "peak RSS increase (ru_maxrss after clear_refs) of ONE forward, fp32, random init",
        "input": [BATCH, 3, HEIGHT, WIDTH],
        "modes": "eval = torch.no_grad(); train = train mode with autograd (activations kept for backward)",
        "note": "forward seconds are wall time on a shared machine: indicative only",
        "commit": git_commit(ROOT),
        "machine": info,
        "rows": rows,
    }
    write_result(ROOT / "results", info, "efen_memory", record)
    lines = [
        f"# EFEN forward memory at {WIDTH}x{HEIGHT}, batch {BATCH}, fp32 ({info['cpu']}, {info['cores']} thread(s))",
        "",
        "Peak resident-set increase over one forward (Linux `ru_maxrss` after resetting it with",
        "`/proc/self/clear_refs`), weights excluded. `eval`: `torch.no_grad()`; `train`: autograd on, so the",
        "activations for a backward pass stay alive. The last column is what ONE explicit N x N fp32 attention",
        "matrix of the largest attention (N tokens, batch 2) would take; the fused",
        "`scaled_dot_product_attention` kernel never builds it. Forward times are from a shared machine.",
        "",
        "| variant | params (M) | eval peak (MB) | eval forward (s) | train peak (MB) | train forward (s) "
        "| largest attention N | explicit N x N (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['params_m']} | {r['eval_peak_rss_increase_mb']} | {r['eval_forward_s']} | "
            f"{r['train_peak_rss_increase_mb']} | {r['train_forward_s']} | {r['attention_tokens']} | "
            f"{r['explicit_attention_matrix_mb']} |"
        )
    lines += ["", f"Commit {record['commit']}; `python benchmarks/efen_memory.py`.", ""]
    out = ROOT / "results" / machine_tag(info) / "efen_memory.md"
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
