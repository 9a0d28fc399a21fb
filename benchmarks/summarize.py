"""Collect benchmarks/results/<machine>/*.json into the Markdown table of benchmarks/RESULTS.md.

    python benchmarks/summarize.py
"""

from __future__ import annotations

import json
from pathlib import Path

from dualseg.runtime import precision_name

KEPT = "<!-- sections below are kept by summarize.py -->"
ROOT = Path(__file__).resolve().parent


def fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def main() -> None:
    lines = [
        "# Accuracy within a training-time budget",
        "",
        "Produced by `python benchmarks/train_accuracy.py CONFIG --split SPLIT` (one JSON per run under",
        "`results/<machine>/`) and collected here by `python benchmarks/summarize.py`. Dice per class is the mean ±",
        "sample std over images (per-image convention, NaN-skip); 'pooled' is the Dice of the confusion counts summed",
        "over the split. Training time excludes start-up and the final evaluation. The machine column names the",
        "results folder: `cpu-2core` = a CPU with AMX (bf16), `cpu-Ncore-avx512-bf16` = AVX512-BF16, no AMX (bf16),",
        "`cpu-Ncore-avx512` / `cpu-Ncore-avx2` = no native bf16 (fp32).",
        "",
        "| config | overrides | machine | precision | epochs | training min | split (images) | class "
        "| Dice mean ± std | pooled Dice |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(ROOT.glob("results/*/*.json")):
        r = json.loads(path.read_text())
        if "per_class_dice" not in r:  # other benchmarks (models.json) live beside the accuracy runs
            continue
        m = r["machine"]
        where = f"{m['gpu'] or m['cpu']} ({m['cores']} threads; `{path.parent.name}`), torch {m['torch']}"
        split = f"{r['split']} ({r['n_images']}{', in FOV' if r.get('fov') else ''})"
        overrides = ", ".join(f"`{o}`" for o in r.get("overrides", []) if not o.startswith("data.root=")) or "-"
        for cls, mean in r["per_class_dice"].items():
            lines.append(
                f"| `{r['config']}` | {overrides} | {where} | {precision_name(m['precision'])} | {r['epochs']} "
                f"| {r['training_minutes']} | {split} "
                f"| {cls} | {fmt(mean, r['per_class_dice_std'][cls])} | {fmt(r['dataset_level_dice'][cls], None)} |"
            )
    results = ROOT / "RESULTS.md"
    kept = results.read_text().partition(KEPT)  # hand-written sections after the marker survive a rerun
    results.write_text("\n".join(lines) + "\n" + (f"\n{KEPT}{kept[2]}" if kept[1] else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
