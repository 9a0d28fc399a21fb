"""The planner against the hand-written configs: for each dataset, ``dualseg plan --budget-min N`` + train, and the
hand-written U-Net config trained for the same N minutes on the same machine, both evaluated on the test split.

    OMP_NUM_THREADS=2 python benchmarks/plan.py --budget-min 15                   # every dataset below
    python benchmarks/plan.py --budget-min 15 --only drive --only isbi2012

Writes ``benchmarks/results/<machine>/plan/<dataset>.json`` as each dataset finishes (commit it) and
``plan.md``, the table of test Dice (planned vs hand-written), the budget each training used and the machine. The
goal (issue 19): planned within 1 Dice point of hand-written or better on every dataset, training within 10 % of
the budget. Runs go to ``benchmarks/runs/plan/`` (not committed). Run it on an otherwise idle machine: the plan
times real steps, and a busy machine plans fewer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from dualseg.benchmark import git_commit, machine, machine_tag  # noqa: E402
from dualseg.config import load_config  # noqa: E402
from dualseg.engine.run_evaluation import evaluate_run  # noqa: E402
from dualseg.engine.trainer import train  # noqa: E402
from dualseg.planning.folder import PlanFiles, plan_folder  # noqa: E402
from dualseg.report.curves import CurvesCallback  # noqa: E402
from dualseg.safety.atomic import atomic_write_text  # noqa: E402

# the split both arms use where the dataset's default has no test set (ISBI 2012: 30 slices; the clean DRFL
# protocol holds out whole slices, fold 0)
SPLIT = {"isbi2012": ["data.split.protocol=drfl_clean", "data.split.folds=4", "data.split.fold=0"]}
# dataset folder -> the hand-written U-Net recipe (config + overrides) it is compared with
HAND_WRITTEN = {
    "isbi2012": ("configs/isbi2012/unet.yaml", []),
    "drive": ("configs/drive/unet.yaml", []),
    "cvc_clinicdb": ("configs/cvc_clinicdb/efen_light.yaml", ["model.name=unet", "model.args={}"]),
    "acdc": ("configs/acdc/unet_light.yaml", []),
    "dsb2018": ("configs/dsb2018/efen.yaml", ["model.name=unet", "model.args={}"]),
}


def run_one(dataset: str, data_root: Path, budget_min: float, runs: Path, clock: str) -> dict:
    """Plan + train and hand-written + train on ``dataset``, both for ``budget_min`` minutes of ``clock`` time
    (``process``: CPU time, so that a machine shared with other work still gives both arms the same compute)."""
    folder = data_root / dataset
    out: dict = {"dataset": dataset, "budget_min": budget_min, "clock": clock,
                 "split_overrides": SPLIT.get(dataset, [])}
    split = [*SPLIT.get(dataset, []), f"train.time_limit_clock={clock}"]
    planned = plan_folder(folder, "unet", budget_min, [*split, f"output_dir={runs / dataset / 'planned'}"],
                          progress=False)
    config, overrides = HAND_WRITTEN[dataset]
    fixed = [f"data.root={folder}", "train.early_stopping=null", f"train.time_limit_min={budget_min}",
             f"output_dir={runs / dataset / 'hand'}"]
    hand = load_config(ROOT.parent / config, [*overrides, *split, *fixed])
    for arm, cfg, callbacks in (("planned", planned.config, [PlanFiles(planned)]), ("hand_written", hand, [])):
        shutil.rmtree(cfg.output_dir, ignore_errors=True)
        state = train(cfg, progress=False, callbacks=[CurvesCallback(), *callbacks])
        summary, _ = evaluate_run(cfg.output_dir, "test", progress=False)
        out[arm] = {"config": config if arm == "hand_written" else "dualseg plan",
                    "overrides": overrides if arm == "hand_written" else [],
                    "test_dice": summary["mean"]["dice"], "n_images": summary["n_images"],
                    "train_minutes": round(state["train_seconds"] / 60, 2), "epochs": state["epoch"],
                    "steps": state["epoch"] * cfg.train.iters_per_epoch if cfg.train.iters_per_epoch else None,
                    "patch_size": cfg.data.patch_size, "batch_size": cfg.train.batch_size,
                    "channels": cfg.model.args.get("channels")}
    out["diff"] = out["planned"]["test_dice"] - out["hand_written"]["test_dice"]
    out["within_1_point"] = out["diff"] >= -0.01
    out["within_budget"] = out["planned"]["train_minutes"] <= 1.1 * budget_min
    return out


def write_table(folder: Path, info: dict) -> None:
    """``plan.md`` from every dataset's JSON in ``folder`` (those of earlier invocations too)."""
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    lines = [f"# Planner vs hand-written U-Net configs ({info['cpu']}, {info.get('cpu_kind', '')}, "
             f"{info.get('cores')} cores, torch {info['torch']})", "",
             f"Budget clock: {results[0]['clock'] if results else 'wall'} time.", "",
             "| dataset | budget (min) | planned test Dice | hand-written | difference | planned min used | "
             "goal met |", "|---|---|---|---|---|---|---|"]
    for r in results:
        p, h = r["planned"], r["hand_written"]
        ok = "yes" if r["within_1_point"] and r["within_budget"] else "no"
        lines.append(f"| {r['dataset']} | {r['budget_min']:g} | {p['test_dice']:.4f} | {h['test_dice']:.4f} | "
                     f"{r['diff']:+.4f} | {p['train_minutes']:.1f} | {ok} |")
    atomic_write_text(folder / "plan.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=15.0)
    parser.add_argument("--only", action="append", choices=sorted(HAND_WRITTEN), help="repeatable")
    parser.add_argument("--table-only", action="store_true", help="only rebuild plan.md from the JSONs")
    parser.add_argument("--clock", choices=["wall", "process"], default="wall",
                        help="the budget's clock (process: CPU time, for a shared machine)")
    parser.add_argument("--data-root", default=os.environ.get("DUALSEG_DATA", str(ROOT.parent.parent / "shared/data")))
    args = parser.parse_args()
    info = machine()
    folder = ROOT / "results" / machine_tag(info) / "plan"
    folder.mkdir(parents=True, exist_ok=True)
    for dataset in [] if args.table_only else args.only or sorted(HAND_WRITTEN):
        if not (Path(args.data_root) / dataset).is_dir():
            print(f"skip {dataset}: not in {args.data_root}")
            continue
        result = {**run_one(dataset, Path(args.data_root), args.budget_min, ROOT / "runs" / "plan", args.clock),
                  "machine": info, "commit": git_commit(ROOT)}
        atomic_write_text(folder / f"{dataset}.json", json.dumps(result, indent=1))
        print(f"{dataset}: planned {result['planned']['test_dice']:.4f} vs hand-written "
              f"{result['hand_written']['test_dice']:.4f} ({result['diff']:+.4f})")
    write_table(folder, info)


if __name__ == "__main__":
    main()
