"""One trained run scored under every metric convention: how far the papers' conventions move the numbers.

    python benchmarks/conventions.py RUN_DIR --split test --name acdc_unet_tiny --budget "6 epochs x 40 steps"

Writes ``benchmarks/results/<machine>/<name>_conventions.json`` and ``.md`` (see docs/metrics.md for the
conventions). The volume conventions run only where the dataset groups slices into volumes. HD95/ASD are computed
for the volume conventions only (per-slice surface metrics of every image are slow on a CPU; 'dualseg evaluate'
reports them); each convention predicts the split again.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from dualseg.benchmark import git_commit, machine, machine_tag, write_result
from dualseg.data.build import make_dataset, prepare_data
from dualseg.engine.evaluator import evaluate_dataset
from dualseg.inference.loading import load_inference_model
from dualseg.metrics.conventions import CONVENTIONS
from dualseg.runtime import resolve_device

ROOT = Path(__file__).resolve().parent
REPORTED = ("dice", "iou", "hd95", "asd", "pr_auc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--split", default="test")
    parser.add_argument("--name", required=True, help="result name, e.g. acdc_unet_tiny")
    parser.add_argument("--budget", default="", help="the run's training budget in steps/epochs, recorded")
    args = parser.parse_args()
    device = resolve_device("auto")
    loaded = load_inference_model(args.run_dir, device=device)
    cfg = loaded.config
    bundle = prepare_data(cfg, Path(args.run_dir) / "split.json")
    dataset = make_dataset(cfg, bundle, args.split, train=False)
    model = loaded.model
    has_volumes = bool(cfg.eval.volume_pattern or bundle.description.volume_pattern)
    rows = {}
    for name, convention in CONVENTIONS.items():
        if convention.unit == "volume" and not has_volumes:
            continue
        t0 = time.perf_counter()
        eval_cfg = replace(cfg.eval, convention=name, surface_metrics=convention.unit == "volume")
        summary = evaluate_dataset(model, dataset, eval_cfg, device, loaded.spec, extended=True)
        rows[name] = {
            "description": summary["convention"],
            "units": summary.get("n_volumes", summary["n_images"]),
            "mean": {m: summary["mean"].get(m) for m in REPORTED},
            "per_class_dice": {c: summary["per_class"][c]["dice"]["mean"] for c in summary["foreground_classes"]},
            "seconds": round(time.perf_counter() - t0, 1),
        }
    info = machine()
    record = {"run": str(args.run_dir), "model": cfg.model.name, "dataset": bundle.description.name,
              "split": args.split, "n_images": summary["n_images"], "checkpoint_epoch": loaded.info["epoch"],
              "budget": args.budget, "commit": git_commit(ROOT), "machine": info, "conventions": rows}
    write_result(ROOT / "results", info, f"{args.name}_conventions", record)
    classes = list(next(iter(rows.values()))["per_class_dice"])
    lines = [f"# {args.name}: {record['model']} on {record['dataset']} {args.split} ({record['n_images']} images), "
             f"every metric convention", "",
             f"Machine: {info['cpu']}, {info['cores']} threads, torch {info['torch']}; training budget: "
             f"{args.budget or 'see the run'}; commit {record['commit']}. HD95/ASD in pixels, volume conventions only.",
             "",
             "| convention | units | " + " | ".join(REPORTED) + " | " + " | ".join(f"Dice {c}" for c in classes)
             + " |", "|---" * (2 + len(REPORTED) + len(classes)) + "|"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    for name, row in rows.items():
        lines.append(f"| `{name}` | {row['units']} | " + " | ".join(fmt(row["mean"][m]) for m in REPORTED) + " | "
                     + " | ".join(fmt(row["per_class_dice"][c]) for c in classes) + " |")
    out = ROOT / "results" / machine_tag(info) / f"{args.name}_conventions.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
