"""Aggregate the campaign's job JSONs into comparisons.json, the curves and benchmarks/COMPARISONS.md.

    python benchmarks/comparisons.py                       # every plan of benchmarks/plans, every machine
    python benchmarks/comparisons.py --plans benchmarks/gpu/plans/*.yaml --results-dir OUT --md OUT/COMPARISONS.md

Per pair of arms of a plan (method, baseline) and machine: each arm's mean test Dice per seed, and over the test
cases (images; volumes for ACDC) the paired difference of the seed-averaged Dice (method minus baseline): its
mean, a 95% percentile-bootstrap interval (10,000 resamples of the cases, fixed seed) and the two-sided Wilcoxon
signed-rank p-value (dualseg.report.statistics.paired_test). Verdict: "better"/"worse" when the interval excludes
0 and p < 0.05, else "no detectable difference". Convergence: the baseline's best validation Dice over its whole
training minus its best over the first 80% of its training time, in Dice points, must stay below 0.5 for every
seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import ROOT, CampaignError, Plan, load_plan, machine_key, read_results  # noqa: E402

from dualseg.report.statistics import SIGNIFICANCE, format_p, paired_test  # noqa: E402

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONVERGED_POINTS = 0.5  # Dice points (x100) the baseline may still gain over the last 20% of its training
DATA_WAIT_LIMIT = 0.05
MIN_SEEDS = 3


def bootstrap_ci(diff: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 level: float = 0.95) -> list[float]:
    """Percentile-bootstrap interval of the mean of ``diff``: resample the cases with replacement."""
    d = np.asarray(diff, dtype=np.float64)
    if d.size == 0:
        return [math.nan, math.nan]
    idx = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def verdict(ci: Sequence[float], p: float | None) -> str:
    """'better'/'worse' when the interval excludes 0 and p < 0.05, else 'no detectable difference'."""
    if p is None or not p < SIGNIFICANCE or any(math.isnan(x) for x in ci) or ci[0] <= 0 <= ci[1]:
        return "no detectable difference"
    return "better" if ci[0] > 0 else "worse"


def late_gain(curve: list[dict[str, float]], fraction: float = 0.8) -> float | None:
    """Best validation Dice over the whole curve minus the best up to ``fraction`` of its training time, in points."""
    if not curve:
        return None
    end = curve[-1]["minutes"]
    early = [c["val_dice"] for c in curve if c["minutes"] <= fraction * end]
    if not early:
        return None
    return 100 * (max(c["val_dice"] for c in curve) - max(early))


def seed_mean_cases(results: list[dict[str, Any]], case_group: str = "") -> dict[str, float]:
    """Per case: the mean Dice over the arm's seeds (seeds where it is undefined skipped). ``case_group``: a regex
    removed from each case name; cases left with one name are one unit (their values averaged), so augmented
    copies of one image (``<stem>_copy<k>``) count once in the paired statistics, not as independent cases."""
    values: dict[str, list[float]] = {}
    for r in results:
        for name, dice in r["per_case_dice"].items():
            unit = re.sub(case_group, "", name) if case_group else name
            values.setdefault(unit, [])
            if dice is not None and not math.isnan(dice):
                values[unit].append(dice)
    return {n: float(np.mean(v)) if v else math.nan for n, v in sorted(values.items())}


def arm_results(plan: Plan, arm: str, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The arm's finished full-budget (non-sweep) jobs, by seed."""
    jobs = [j for j in plan.jobs if j.arm == arm and not j.sweep and j.id in results]
    return sorted((results[j.id] for j in jobs), key=lambda r: r["seed"])


def compare_pair(plan: Plan, pair: dict[str, Any], results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """One comparisons.json row, or None before both arms have a result."""
    method, baseline = arm_results(plan, pair["method"], results), arm_results(plan, pair["baseline"], results)
    if not method or not baseline:
        return None
    machines = {machine_key(r["machine"]) for r in method + baseline}
    if len(machines) > 1:
        raise CampaignError(f"{plan.comparison}: results from several machines {sorted(machines)}; never mix them")
    m_cases, b_cases = seed_mean_cases(method, plan.case_group), seed_mean_cases(baseline, plan.case_group)
    if set(m_cases) != set(b_cases):
        raise CampaignError(f"{plan.comparison}: {pair['method']} and {pair['baseline']} were evaluated on "
                            "different cases; evaluate both on the same split")
    names = [n for n in m_cases if not (math.isnan(m_cases[n]) or math.isnan(b_cases[n]))]
    a, b = [b_cases[n] for n in names], [m_cases[n] for n in names]
    diff = np.subtract(b, a)
    test = paired_test(a, b)
    ci = bootstrap_ci(diff)
    gains = [late_gain(r["val_curve"]) for r in baseline]
    method_gains = [late_gain(r["val_curve"]) for r in method]
    converged = all(g is not None and g < CONVERGED_POINTS for g in gains)
    wait = max(r["data_wait_max"] for r in method + baseline)
    row = {
        "method": plan.arms[pair["method"]]["model"],
        "baseline": plan.arms[pair["baseline"]]["model"],
        "dataset": plan.dataset,
        "split": plan.split,
        "metric": f"{plan.metric} ({method[0]['convention']}, foreground mean)",
        "budget_min": sorted({r["budget_min"] for r in method + baseline}),
        "machine": machines.pop(),
        "seeds": sorted({r["seed"] for r in method + baseline}),
        "method_scores": [r["mean"] for r in method],
        "baseline_scores": [r["mean"] for r in baseline],
        "method_steps": [r["steps"] for r in method],
        "baseline_steps": [r["steps"] for r in baseline],
        "diff_mean": float(diff.mean()) if diff.size else None,
        "diff_ci95": ci,
        "p_value": test.wilcoxon_p,
        "verdict": verdict(ci, test.wilcoxon_p),
        "n_cases": len(names),
        "precision": sorted({r["precision"] for r in method + baseline}),
        "baseline_lr": sorted({r["lr"] for r in baseline}),
        "baseline_val_gain_last20": None if None in gains else round(max(gains), 3),
        "method_val_gain_last20": None if None in method_gains else round(max(method_gains), 3),
        "baseline_converged": converged,
        "data_wait_max": wait,
        "notes": [],
        "reason": pair.get("reason", ""),
    }
    row["budget_min"] = [round(b, 3) for b in row["budget_min"]]
    if len(row["budget_min"]) == 1:
        row["budget_min"] = row["budget_min"][0]
    row["notes"] = row_notes(row, method + baseline)
    return row


def row_notes(row: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    """What a reader must know about a row: unmet rules, stops other than the time limit, slow loading."""
    notes = []
    if min(len(row["method_scores"]), len(row["baseline_scores"])) < MIN_SEEDS:
        notes.append(f"fewer than {MIN_SEEDS} seeds per arm so far")
    if isinstance(row["budget_min"], list):
        notes.append("the arms had different budgets")
    gain = row["baseline_val_gain_last20"]
    if gain is None:
        notes.append("baseline convergence unknown (no validation before 80% of its training)")
    elif not row["baseline_converged"]:
        notes.append(f"baseline not converged (gains {gain:.2f} Dice points over the last 20% of training)")
    early = sorted({r["job"] for r in results if r["stopped_by"] != "time"})
    if early:
        notes.append(f"stopped before the time limit: {', '.join(early)}")
    if row["data_wait_max"] >= DATA_WAIT_LIMIT:
        notes.append(f"data loading took {row['data_wait_max']:.0%} of step time in some epoch")
    return notes


def comparisons_for(plans: list[Plan], results_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """``{machine: [rows]}`` over every machine folder with campaign results."""
    out: dict[str, list[dict[str, Any]]] = {}
    for machine_dir in sorted(p for p in results_dir.glob("*") if (p / "campaign").is_dir()):
        rows = []
        for plan in plans:
            results = read_results(machine_dir / "campaign" / plan.comparison)
            rows += [r for pair in plan.pairs if (r := compare_pair(plan, pair, results)) is not None]
        if rows:
            out[machine_dir.name] = rows
    return out


def plot_curves(plan: Plan, results: dict[str, dict[str, Any]], path: Path) -> None:
    """Validation Dice against training minutes, one colour per arm, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, arm in enumerate(plan.arms):
        for i, r in enumerate(arm_results(plan, arm, results)):
            curve = r["val_curve"]
            ax.plot([c["minutes"] for c in curve], [c["val_dice"] for c in curve], color=f"C{k}", alpha=0.8,
                    marker="o", markersize=2,
                    label=f"{plan.arms[arm]['model']} (lr {r['lr']:g})" if i == 0 else None)
            if r["role"] == "baseline" and curve:
                ax.axvline(0.8 * curve[-1]["minutes"], color=f"C{k}", ls=":", lw=0.8)
    clocks = {r["machine"].get("clock", "wall") for r in results.values()}
    ax.set_xlabel("training minutes" + (" (process CPU time)" if clocks == {"process"} else ""))
    ax.set_ylabel("validation Dice")
    ax.set_title(f"{plan.comparison}: validation Dice per seed (dotted: 80% of the baseline's training)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _num(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _scores(values: list[float]) -> str:
    if not values:
        return "–"
    std = f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else ""
    return f"{np.mean(values):.4f}{std} (n={len(values)})"


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| method | baseline | data (cases) | budget min | steps method / baseline | method Dice | "
             "baseline Dice | diff [95% CI] | p (Wilcoxon) | verdict | baseline converged | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"{r['diff_mean']:+.4f} [{r['diff_ci95'][0]:+.4f}, {r['diff_ci95'][1]:+.4f}]"
        conv = f"{'yes' if r['baseline_converged'] else 'NO'} ({_num(r['baseline_val_gain_last20'], 2)} pts)"
        notes = "; ".join(r["notes"] + ([f"reason: {r['reason']}"] if r["reason"] else [])) or "–"
        lines.append(
            f"| `{r['method']}` | `{r['baseline']}` (lr {', '.join(f'{x:g}' for x in r['baseline_lr'])}) "
            f"| {r['dataset']} ({r['n_cases']}) | {r['budget_min']} "
            f"| {'/'.join(map(str, r['method_steps']))} vs {'/'.join(map(str, r['baseline_steps']))} "
            f"| {_scores(r['method_scores'])} | {_scores(r['baseline_scores'])} | {ci} | {format_p(r['p_value'])} "
            f"| **{r['verdict']}** | {conv} | {notes} |")
    return lines


HEADER = """# Comparison campaign: each method against its tuned baseline

Generated by `python benchmarks/comparisons.py` from the job results of `python benchmarks/campaign.py PLAN`
(`results/<machine>/campaign/<comparison>/<job>.json`, rows in `results/<machine>/comparisons.json`). Plans:
`benchmarks/plans/*.yaml` (CPU) and `benchmarks/gpu/plans/*.yaml` (one H200, `benchmarks/gpu/campaign.sh`).

## Rules

- **Tuned baseline.** The baseline never takes the method's recipe: its learning rate is the best of a 3-point
  sweep on validation (sweep jobs, seed 0, a short budget); its full-budget jobs use `lr: from_sweep`, which
  `campaign.py` resolves from the sweep's JSONs on the same machine (highest validation Dice; the first in plan
  order on a tie), or a plan fixes the lr a committed sweep chose on another machine and says so in its header
  (ISBI 2012, ACDC: a learning rate is part of a recipe; the arms, whose budgets are compared, all run on one
  machine). Sessions draw machines of differing kinds, so a comparison's arms are sized to finish on one (two
  1-thread streams, about 2.5 h: six 30-min arms).
- **Equal budget.** Every arm trains for the same time budget (`train.time_limit_min`, checked after every step,
  so a run ends within one step and one validation pass past it; validation time counts; arms trained before
  2026-12-03, the ISBI 2012 comparison included, were checked after each epoch and ended within one epoch past it,
  both arms of a comparison always with the same code) on the same machine with the same number of
  threads; the table reports the steps each seed took. The recipe's schedule runs over the budget
  (`train.schedule.horizon: time`: the learning rate follows the spent share of the budget, so poly, cosine and
  linear decay end when the budget does) and time stops training (`stopped_by` in each JSON). The clock
  (`train.time_limit_clock`, set by `--clock`) is wall time (the GPU script) or, on a CPU machine shared with
  other work, the campaign process's CPU time (`process`: one thread, in-process data loading, so equal budgets
  stay equal compute however busy the machine is); one clock per comparison.
- **Converged baseline.** The baseline's best validation Dice over its whole training minus its best over the
  first 80% of its training time must stay below 0.5 Dice points for every seed (column "baseline converged";
  curves below, dotted line at 80%).
- **Seeds and statistics.** At least 3 seeds per arm; per arm the mean ± std (ddof 1) over seeds of the mean test
  Dice. The difference (method minus baseline) is taken per test case (image; volume for ACDC; held-out slice
  for ISBI's drfl_clean, its copies averaged: the plan's `case_group`) on the Dice averaged over each arm's
  seeds; its mean, a 95% percentile-bootstrap interval (10,000 resamples of the cases, seed 0) and the two-sided
  Wilcoxon signed-rank test on the same paired per-case values (`dualseg.report.statistics`).
- **Selection on validation only.** Checkpoints are chosen on validation Dice; no threshold is tuned (argmax).
- **Verdict.** "better" / "worse" when the interval excludes 0 and p < 0.05, else "no detectable difference";
  where a method loses, the reason found is stated in the plan's pair (`reason`) and shown in the notes.
- **One machine per comparison.** The CPU model, threads, precision and torch version are recorded with each
  result; `campaign.py` refuses to add results from another machine to a comparison.
- **Data loading.** `data_wait` (metrics.csv) is the fraction of step time spent waiting for batches; rows where
  it reaches 5% in some epoch say so. DRIVE's sweeps wait 15-20%: each 256-px RGB sample costs about 22 ms on
  one thread (half MONAI's affine and intensity transforms of the crop, half the cached read and the bicubic
  LR input), against a step of about 0.5 s for a batch of 4. A loader worker would take this off the training
  thread, but its CPU time falls outside the process-time budget (the budget would no longer be equal
  compute), so campaign jobs load in-process; both arms of a comparison pay the same cost.

## How to run

```bash
python benchmarks/campaign.py benchmarks/plans/cvc_efen.yaml --dry-run     # jobs: done / pending / blocked
OMP_NUM_THREADS=1 DUALSEG_DATA=/path/to/data nohup python benchmarks/campaign.py benchmarks/plans/cvc_efen.yaml \\
    --nice --clock process --runs-dir /tmp/runs/campaign > /tmp/campaign_cvc_efen.log 2>&1 &   # in the background
git add benchmarks/results/*/campaign && git commit -m "campaign results"  # any time: finished jobs only
python benchmarks/campaign.py PLAN --resume --clock process --runs-dir /tmp/runs/campaign  # continue after a stop
python benchmarks/comparisons.py                                           # this file, the JSON, the curves
```

A plan (`benchmarks/plans/*.yaml`) names the comparison, the dataset, the arms (`model`: the registered name
reported, `role`), the `pairs` to test and the `jobs`: `{id, config, arm, seed, budget_min, split, overrides, lr,
sweep, convention}`, with `defaults` merged into each job (overrides: defaults first) and a list of seeds or lrs
expanded into one job per value (`<id>_s<seed>`, `<id>_lr<lr>`). An override holding `TODO(` marks a job that
waits for another change; it is listed as blocked and never runs. Jobs run in plan order (the sweeps first); a job
whose JSON exists is skipped, a half-finished one continues with `--resume` (its run directory keeps the
checkpoint and the budget spent), `--only COMPARISON` and `--job ID` narrow the run. Two 1-thread streams on one
2-core machine are two processes given disjoint `--job` lists (each plan's header lists them); before each job a
process re-reads the comparison's folder, so it skips a job the other finished and takes `lr: from_sweep` from
sweeps the other ran, waiting for them with `--wait-sweeps MIN`. `--budget-scale F` and `--set` exist to test the
path and must write elsewhere (`--results-dir`).
"""


def write_markdown(plans: list[Plan], by_machine: dict[str, list[dict[str, Any]]], results_dir: Path,
                   md: Path, curves_dir: Path) -> None:
    lines = [HEADER, "## Results", ""]
    if not by_machine:
        lines.append("No comparison has results from both arms yet.")
    for machine, rows in by_machine.items():
        lines += [f"### {machine}: {rows[0]['machine']}, precision {', '.join(rows[0]['precision'])}", ""]
        lines += table(rows) + [""]
        for plan in plans:
            results = read_results(results_dir / machine / "campaign" / plan.comparison)
            if not any(arm_results(plan, a, results) for a in plan.arms):
                continue
            png = curves_dir / machine / f"{plan.comparison}.png"
            plot_curves(plan, results, png)
            lines += [f"![{plan.comparison}]({os.path.relpath(png.resolve(), md.parent.resolve())})", ""]
    md.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", nargs="+", default=sorted(str(p) for p in (ROOT / "plans").glob("*.yaml")))
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    parser.add_argument("--md", default=str(ROOT / "COMPARISONS.md"))
    parser.add_argument("--curves-dir", default=str(ROOT / "curves"))
    args = parser.parse_args(argv)
    try:
        plans = [load_plan(p) for p in args.plans]
        results_dir = Path(args.results_dir)
        by_machine = comparisons_for(plans, results_dir)
        for machine, rows in by_machine.items():
            (results_dir / machine / "comparisons.json").write_text(json.dumps(rows, indent=1) + "\n")
        write_markdown(plans, by_machine, results_dir, Path(args.md), Path(args.curves_dir))
    except CampaignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for machine, rows in by_machine.items():
        for r in rows:
            print(f"{machine} {r['dataset']}: {r['method']} vs {r['baseline']}: {r['diff_mean']:+.4f} "
                  f"{r['diff_ci95']} p={format_p(r['p_value'])} -> {r['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
