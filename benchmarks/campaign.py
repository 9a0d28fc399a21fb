"""Run a comparison campaign over days: the (config, overrides, seed) jobs of a plan, one after another.

    python benchmarks/campaign.py benchmarks/plans/cvc_efen.yaml --dry-run        # the jobs and what is done
    OMP_NUM_THREADS=1 nohup python benchmarks/campaign.py benchmarks/plans/cvc_efen.yaml --nice --clock process \\
        > /tmp/runs/campaign_cvc_efen.log 2>&1 &                     # niced, in the background, CPU-time budgets
    python benchmarks/campaign.py PLAN --resume --clock process     # continue a half-finished job (same flags)

Each job trains its config with ``train.time_limit_min`` = the job's budget (the plan's epochs are large enough
that time, not epochs, stops training), keeps the checkpoint that is best on validation, evaluates it on the
job's split and writes ``<results>/<machine>/campaign/<comparison>/<job id>.json`` at once (commit it): per-case
Dice, mean, steps, wall time, machine (CPU model, threads, precision, torch), git commit, data-wait fraction and
the validation curve. Jobs whose JSON exists are skipped, so the same command continues a campaign. The plan
format, the learning-rate sweep (``lr: from_sweep``) and the rules: benchmarks/COMPARISONS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
# the dualseg of this checkout, not whatever an editable install points at: a campaign run from a snapshot worktree
# must keep its code while the main checkout changes (its lazy imports at evaluation time would read the new code)
sys.path.insert(0, str(REPO))

from dualseg.errors import DualsegError  # noqa: E402
from dualseg.runtime import precision_name  # noqa: E402

PLACEHOLDER = "TODO("  # an override value holding this marks a job that waits for another change
FROM_SWEEP = "from_sweep"
TRAINED_MARKER = "campaign_trained.json"
# Evaluation extras that 'dualseg evaluate' adds and the campaign does not use (slow on a CPU).
EVAL_OFF = ["eval.surface_metrics=false", "eval.pr_auc=false", "eval.sr_metrics=false"]


class CampaignError(DualsegError):
    """A plan or campaign problem; printed as one line."""


@dataclass
class Job:
    id: str
    config: str
    arm: str
    comparison: str
    seed: int
    budget_min: float
    split: str = "test"
    overrides: list[str] = field(default_factory=list)
    lr: float | str | None = None  # a number, 'from_sweep' (the arm's best sweep lr on val) or None (the config's)
    sweep: bool = False  # a learning-rate sweep job (evaluated on val; picks the lr of 'from_sweep' jobs)
    convention: str = "per_image"
    quick: list[str] = field(default_factory=list)  # applied only with --quick: small sizes for tests of the path

    @property
    def blocked(self) -> str | None:
        """The placeholder override that keeps this job from running, if any."""
        return next((o for o in self.overrides if PLACEHOLDER in o), None)


@dataclass
class Plan:
    path: Path
    comparison: str
    dataset: str
    split: str
    metric: str
    arms: dict[str, dict[str, Any]]
    pairs: list[dict[str, Any]]
    jobs: list[Job]
    notes: str = ""
    case_group: str = ""  # a regex removed from case names: the rest names the unit paired (e.g. "_copy\\d+$")


JOB_KEYS = {f for f in Job.__dataclass_fields__} - {"comparison"}
PLAN_KEYS = {"comparison", "dataset", "split", "metric", "arms", "pairs", "defaults", "jobs", "notes", "convention",
             "case_group"}


def _listify(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def load_plan(path: str | Path, first: int | None = None) -> Plan:
    """Read a plan: top-level facts, ``defaults`` merged into every job (overrides: defaults first), and job entries
    whose ``seed`` or ``lr`` is a list expanded into one job per value (ids ``<id>_s<seed>``, ``<id>_lr<lr>``;
    ``{seed}`` in an override is the job's seed, e.g. ``data.split.fold={seed}``: each seed on its own fold);
    ``first``: keep only the first that many values of each list (quick runs of the path)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CampaignError(f"cannot read plan {path}: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise CampaignError(f"{path}: a plan is a mapping with a 'jobs' list (see benchmarks/COMPARISONS.md)")
    unknown = set(data) - PLAN_KEYS
    if unknown:
        raise CampaignError(f"{path}: unknown plan keys {sorted(unknown)}; valid: {sorted(PLAN_KEYS)}")
    for key in ("comparison", "dataset", "arms", "pairs"):
        if key not in data:
            raise CampaignError(f"{path}: the plan needs '{key}'")
    defaults = dict(data.get("defaults") or {})
    if "convention" in data:
        defaults.setdefault("convention", data["convention"])
    jobs: list[Job] = []
    for entry in data["jobs"]:
        merged = {**defaults, **entry, **{k: [*defaults.get(k, []), *entry.get(k, [])] for k in ("overrides", "quick")}}
        bad = set(merged) - JOB_KEYS
        if bad:
            raise CampaignError(f"{path}: job {entry.get('id')!r} has unknown keys {sorted(bad)}")
        missing = {"id", "config", "arm", "seed", "budget_min"} - set(merged)
        if missing:
            raise CampaignError(f"{path}: job {entry.get('id')!r} lacks {sorted(missing)}")
        if merged["arm"] not in data["arms"]:
            raise CampaignError(f"{path}: job {merged['id']!r} names arm {merged['arm']!r}, not one of the plan's arms")
        seed_list, lr_list = isinstance(merged["seed"], list), isinstance(merged.get("lr"), list)
        for seed in _listify(merged["seed"])[:first]:
            for lr in _listify(merged.get("lr"))[:first]:
                job_id = merged["id"] + (f"_lr{lr:g}" if lr_list else "") + (f"_s{seed}" if seed_list else "")
                overrides = [o.replace("{seed}", str(seed)) for o in merged["overrides"]]
                jobs.append(Job(**{**merged, "id": job_id, "seed": int(seed), "lr": lr, "overrides": overrides},
                                comparison=data["comparison"]))
    # sweeps first (their lr feeds 'from_sweep'), then seed by seed: a campaign stopped early has equal seeds per arm
    jobs = sorted(jobs, key=lambda j: (not j.sweep, j.seed if not j.sweep else 0))
    ids = [j.id for j in jobs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CampaignError(f"{path}: duplicate job ids {dupes}")
    for pair in data["pairs"]:
        for role in ("method", "baseline"):
            if pair.get(role) not in data["arms"]:
                raise CampaignError(f"{path}: pair {pair} names {role} {pair.get(role)!r}, not one of the arms")
    return Plan(path, data["comparison"], data["dataset"], data.get("split", ""), data.get("metric", "dice"),
                data["arms"], data["pairs"], jobs, data.get("notes", ""), data.get("case_group", ""))


# --- results ------------------------------------------------------------------------------------------------------
def comparison_dir(results: Path, machine_name: str, comparison: str) -> Path:
    return results / machine_name / "campaign" / comparison


def read_results(folder: Path) -> dict[str, dict[str, Any]]:
    """The finished jobs' JSONs in one comparison folder, by job id."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def machine_key(info: dict[str, Any]) -> str:
    """What must be equal across one comparison: CPU model and kind (or GPU), threads, the automatic precision (two
    machines can share a generic CPU name but not bf16 support) and the clock the budgets were counted on."""
    kind = f", {info['cpu_kind']}" if info.get("cpu_kind") and not info["gpu"] else ""
    return (f"{info['gpu'] or info['cpu']}{kind} ({info['cores']} threads, auto precision "
            f"{precision_name(info['precision'])}, {info.get('clock', 'wall')} clock)")


def check_machine(folder: Path, info: dict[str, Any]) -> None:
    """One-line error when the comparison already has results from another machine."""
    here = machine_key(info)
    for job_id, result in read_results(folder).items():
        there = machine_key(result["machine"])
        if there != here:
            raise CampaignError(
                f"{folder} already has results from '{there}' ({job_id}.json) but this machine is '{here}': never "
                "mix machines inside one comparison; finish it there, or use another --results-dir"
            )


def sweep_choice(plan: Plan, arm: str, results: dict[str, dict[str, Any]]) -> tuple[float | None, list[str]]:
    """The lr of ``arm``'s sweep job with the best validation Dice (first in plan order on ties), and the sweep jobs
    still missing (then the lr is None)."""
    sweeps = [j for j in plan.jobs if j.arm == arm and j.sweep]
    if not sweeps:
        raise CampaignError(f"{plan.path}: arm {arm!r} uses lr: {FROM_SWEEP} but has no sweep jobs (sweep: true)")
    missing = [j.id for j in sweeps if j.id not in results]
    if missing:
        return None, missing
    best = max(sweeps, key=lambda j: (results[j.id]["mean"], -sweeps.index(j)))
    return float(best.lr), []


def resolved_lr(job: Job, plan: Plan, results: dict[str, dict[str, Any]]) -> float | None:
    if job.lr != FROM_SWEEP:
        return None if job.lr is None else float(job.lr)
    lr, missing = sweep_choice(plan, job.arm, results)
    if lr is None:
        raise CampaignError(f"job {job.id}: lr {FROM_SWEEP} needs the sweep jobs {missing} first")
    return lr


def lr_when_ready(job: Job, plan: Plan, folder: Path, results: dict[str, dict[str, Any]], wait_min: float,
                  poll_s: float = 30.0) -> float | None:
    """``resolved_lr``, re-reading ``folder`` for results another stream (a second campaign process on the same
    machine) wrote meanwhile; a ``from_sweep`` job whose sweeps are still missing waits up to ``wait_min`` minutes
    for them, polling every ``poll_s`` seconds."""
    results.update(read_results(folder))
    deadline = time.monotonic() + wait_min * 60
    while job.lr == FROM_SWEEP and sweep_choice(plan, job.arm, results)[0] is None and time.monotonic() < deadline:
        missing = sweep_choice(plan, job.arm, results)[1]
        print(f"{plan.comparison}/{job.id}: waiting for the sweep jobs {missing} (--wait-sweeps {wait_min:g})",
              flush=True)
        time.sleep(poll_s)
        results.update(read_results(folder))
    return resolved_lr(job, plan, results)


# --- one job ------------------------------------------------------------------------------------------------------
def recipe_overrides(job: Job, lr: float | None, data_root: str | None, extra: list[str]) -> list[str]:
    """The job's overrides as recorded with its result: the plan's, the data root, the resolved lr, --set."""
    out = list(job.overrides)
    if data_root:
        out.append(f"data.root={Path(data_root) / dataset_folder(job.config)}")
    if lr is not None:
        out.append(f"train.optimizer.lr={lr}")
    return [*out, *EVAL_OFF, *extra]


def run_overrides(job: Job, run_dir: Path, budget_min: float, threads: int, clock: str = "wall") -> list[str]:
    """What the campaign sets on every job: run directory, seed, CPU threads and the time budget, counted on
    ``clock`` (``train.time_limit_clock``), with the recipe's schedule run over that budget (``train.schedule.horizon:
    time``: poly/cosine/linear_decay reach their end when the budget does; training runs until the budget)."""
    return [f"output_dir={run_dir}", f"seed={job.seed}", f"train.time_limit_min={budget_min}",
            f"train.time_limit_clock={clock}", "train.schedule.horizon=time", f"train.threads={threads}"]


def dataset_folder(config: str) -> str:
    """The dataset folder name a shipped config reads (its ``data.root``'s last part)."""
    from dualseg.config import load_yaml

    root = (load_yaml(REPO / config).get("data") or {}).get("root", "")
    return Path(root).name


def read_curve(metrics_csv: Path, steps_per_epoch: float) -> list[dict[str, float]]:
    """The validation Dice per validated epoch: ``[{epoch, step, minutes, val_dice}]``."""
    rows = list(csv.DictReader(metrics_csv.read_text().splitlines())) if metrics_csv.is_file() else []
    return [{"epoch": int(r["epoch"]), "step": round(int(r["epoch"]) * steps_per_epoch),
             "minutes": round(float(r["time_s"]) / 60, 3), "val_dice": float(r["val_dice"])}
            for r in rows if r.get("val_dice")]


def data_wait_fraction(metrics_csv: Path) -> tuple[float, float]:
    """Mean and max over epochs of the data-wait fraction (epochs have equal step counts)."""
    rows = list(csv.DictReader(metrics_csv.read_text().splitlines()))
    values = [float(r["data_wait"]) for r in rows if r.get("data_wait")]
    return (sum(values) / len(values), max(values)) if values else (0.0, 0.0)


def stopped_by(state: dict[str, Any], cfg: Any) -> str:
    if cfg.train.time_limit_min and state["train_seconds"] >= cfg.train.time_limit_min * 60:
        return "time"
    return "epochs" if state["epoch"] >= cfg.train.epochs else "early_stopping"


def run_job(job: Job, plan: Plan, recipe: list[str], run: list[str], run_dir: Path, resume: bool) -> dict[str, Any]:
    """Train (or continue) and evaluate one job; return its result record."""
    import torch

    from dualseg.benchmark import git_commit, machine
    from dualseg.checkpoint import load_checkpoint
    from dualseg.config import load_config
    from dualseg.engine.run_evaluation import evaluate_run
    from dualseg.engine.trainer import train
    from dualseg.report.curves import CurvesCallback
    from dualseg.runtime import resolve_device, resolve_precision
    from dualseg.safety.atomic import atomic_write_text

    cfg = load_config(REPO / job.config, [*recipe, *run])
    if cfg.train.val_every != 1:
        raise CampaignError(f"job {job.id}: campaign jobs validate every epoch (time may stop training after any "
                            "epoch): set train.val_every=1 and size train.iters_per_epoch instead")
    last, marker = run_dir / "checkpoints" / "last.pt", run_dir / TRAINED_MARKER
    commit = git_commit(REPO)
    t0 = time.perf_counter()
    if marker.is_file():
        state = json.loads(marker.read_text())
    else:
        if last.is_file() and not resume:
            raise CampaignError(f"job {job.id} has a half-finished run in {run_dir}: add --resume to continue it "
                                "(or delete that folder to start it again)")
        if not last.is_file() and run_dir.exists():
            shutil.rmtree(run_dir)  # stopped before its first checkpoint: nothing to keep
        ckpt_state = load_checkpoint(last)["trainer"] if last.is_file() else None
        limit_s = (cfg.train.time_limit_min or math.inf) * 60
        if ckpt_state is not None and ckpt_state["train_seconds"] >= limit_s:
            state = ckpt_state  # the budget was spent before the stop: do not train another epoch
        else:
            state = train(cfg, resume=last.is_file(), progress=False, callbacks=[CurvesCallback()])
        state = {k: state[k] for k in ("epoch", "step", "best", "best_epoch", "train_seconds")}
        atomic_write_text(marker, json.dumps(state))
    summary, _ = evaluate_run(run_dir, job.split, progress=False, convention=job.convention)
    cases = summary.get("per_volume") or summary["per_image"]
    info = {**machine(), "cores": cfg.train.threads or torch.get_num_threads(),
            "clock": cfg.train.time_limit_clock}
    precision = precision_name(resolve_precision(cfg.train.precision, resolve_device(cfg.train.device)))
    wait_mean, wait_max = data_wait_fraction(run_dir / "metrics.csv")
    steps_per_epoch = state["step"] / max(state["epoch"], 1)
    return {
        "job": job.id, "comparison": plan.comparison, "arm": job.arm, "model": plan.arms[job.arm]["model"],
        "role": plan.arms[job.arm].get("role", ""), "dataset": plan.dataset, "config": job.config,
        "overrides": recipe,
        "seed": job.seed, "lr": cfg.train.optimizer.lr, "sweep": job.sweep, "budget_min": cfg.train.time_limit_min,
        "split": job.split, "convention": summary["convention_name"], "unit": "volume" if "per_volume" in summary
        else "image", "n_cases": len(cases), "mean": summary["mean"]["dice"],
        "per_case_dice": {c["name"]: c["mean"]["dice"] for c in cases},
        "steps": state["step"], "epochs": state["epoch"], "best_epoch": state["best_epoch"],
        "best_val_dice": state["best"] if math.isfinite(state["best"]) else None, "stopped_by": stopped_by(state, cfg),
        "train_minutes": round(state["train_seconds"] / 60, 3),
        "wall_minutes_this_call": round((time.perf_counter() - t0) / 60, 3),
        "data_wait_mean": round(wait_mean, 4), "data_wait_max": round(wait_max, 4),
        "val_curve": read_curve(run_dir / "metrics.csv", steps_per_epoch),
        "machine": info, "precision": precision, "torch": info["torch"], "commit": commit,
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
    }


# --- the campaign -------------------------------------------------------------------------------------------------
def pending_jobs(plan: Plan, done: dict[str, Any], only: str | None, ids: list[str]) -> list[Job]:
    """The plan's jobs without a result, in plan order; ``only``: this comparison; ``ids``: these jobs."""
    if only and only != plan.comparison:
        return []
    return [j for j in plan.jobs if j.id not in done and (not ids or j.id in ids)]


def describe(job: Job, plan: Plan, done: dict[str, Any], scale: float) -> str:
    if job.id in done:
        r = done[job.id]
        return f"done     {job.id}: {job.split} Dice {r['mean']:.4f}, {r['steps']} steps, lr {r['lr']:g}"
    if job.blocked:
        return f"blocked  {job.id}: placeholder override {job.blocked!r}"
    lr = job.lr
    if job.lr == FROM_SWEEP:
        chosen, missing = sweep_choice(plan, job.arm, done)
        lr = f"from_sweep -> {chosen:g}" if chosen is not None else f"from_sweep (after {len(missing)} sweep jobs)"
    return (f"pending  {job.id}: {job.config} seed {job.seed}, {job.budget_min * scale:g} min, lr {lr}, "
            f"eval {job.split}" + (f" {' '.join(job.overrides)}" if job.overrides else ""))


DEFAULT_OVERHEAD_MIN = 1.0  # set-up, last epoch past the limit and evaluation of a job, before one is measured


def eta_line(left_budgets: list[float], overhead_min: float) -> str:
    """Remaining time: the budgets left plus the measured per-job overhead (wall time beyond the budget) each."""
    left = sum(left_budgets) + len(left_budgets) * overhead_min
    finish = dt.datetime.now() + dt.timedelta(minutes=left)
    return f"ETA {left / 60:.1f} h (about {finish:%a %H:%M})"


def stand_in(plans: list[Plan], replacement: list[str]) -> None:
    """Replace every placeholder override by ``replacement`` (tests of the path only)."""
    for plan in plans:
        for job in plan.jobs:
            if job.blocked:
                job.overrides = [x for o in job.overrides for x in (replacement if PLACEHOLDER in o else [o])]


def run_plans(plans: list[Plan], args: argparse.Namespace) -> int:
    import torch

    from dualseg.benchmark import machine, machine_tag

    threads = torch.get_num_threads()
    info = {**machine(), "cores": threads, "clock": args.clock}  # every job trains with this process's threads
    if args.clock == "process" and info["gpu"] and not args.dry_run:
        raise CampaignError("--clock process counts CPU time, not GPU work: use --clock wall on a GPU machine")
    name = args.machine or machine_tag(info)
    results_root = Path(args.results_dir)
    plan_done = {p.comparison: read_results(comparison_dir(results_root, name, p.comparison)) for p in plans}
    queue = [(p, j) for p in plans for j in pending_jobs(p, plan_done[p.comparison], args.only, args.job)]
    if args.dry_run:
        for p in plans:
            if args.only and args.only != p.comparison:
                continue
            total = sum(j.budget_min for j in p.jobs) * args.budget_scale
            print(f"{p.comparison} ({p.path}): {len(p.jobs)} jobs, {total:g} budget-min ({total / 60:.1f} h), "
                  f"results in {comparison_dir(results_root, name, p.comparison)}")
            for j in p.jobs:
                print("  " + describe(j, p, plan_done[p.comparison], args.budget_scale))
        return 0
    runnable = [(p, j) for p, j in queue if not j.blocked]
    for p, j in queue:
        if j.blocked:
            print(f"skip {p.comparison}/{j.id}: blocked by placeholder {j.blocked!r}", flush=True)
    for p in {p.comparison: p for p, _ in runnable}.values():
        check_machine(comparison_dir(results_root, name, p.comparison), info)
    overheads: list[float] = []
    start = time.perf_counter()
    for n, (plan, job) in enumerate(runnable, start=1):
        done = plan_done[plan.comparison]
        budget = job.budget_min * args.budget_scale
        overhead = sum(overheads) / len(overheads) if overheads else DEFAULT_OVERHEAD_MIN
        late = args.stop_after is not None and (time.perf_counter() - start) / 60 + budget + overhead > args.stop_after
        if late:
            print(f"stop: {len(runnable) - n + 1} jobs left would end after --stop-after {args.stop_after:g} min",
                  flush=True)
            break
        folder = comparison_dir(results_root, name, plan.comparison)
        lr = lr_when_ready(job, plan, folder, done, args.wait_sweeps)
        if job.id in done:
            print(f"[{n}/{len(runnable)}] {plan.comparison}/{job.id}: done meanwhile by another process", flush=True)
            continue
        run_dir = Path(args.runs_dir) / name / plan.comparison / job.id
        extra = [*(job.quick if args.quick else []), *args.overrides]
        recipe = recipe_overrides(job, lr, args.data_root, extra)
        print(f"[{n}/{len(runnable)}] {plan.comparison}/{job.id}: start ({budget:g} min) {dt.datetime.now():%H:%M}",
              flush=True)
        t0 = time.perf_counter()
        result = run_job(job, plan, recipe, run_overrides(job, run_dir, budget, threads, args.clock), run_dir,
                         args.resume)
        result["budget_scale"] = args.budget_scale
        result["campaign_set"] = extra
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{job.id}.json").write_text(json.dumps(result, indent=1) + "\n")
        done[job.id] = result
        overheads.append((time.perf_counter() - t0) / 60 - budget)
        left = [j.budget_min * args.budget_scale for _, j in runnable[n:]]
        print(f"[{n}/{len(runnable)}] {plan.comparison}/{job.id}: {job.split} Dice {result['mean']:.4f}, "
              f"{result['steps']} steps in {result['train_minutes']:.1f} min, data wait {result['data_wait_mean']:.1%}"
              f" -> {folder / (job.id + '.json')}; {eta_line(left, sum(overheads) / len(overheads))}", flush=True)
    return 0


def lower_priority() -> None:
    """nice 19, and where Linux groups processes by session for scheduling (``sched_autogroup``), a session of
    its own at group nice 19: a nice value counts only inside its group, so a niced job sharing no session with
    the foreground work would otherwise still take an equal share of the CPU (seen with two cores: tests ran at
    half speed beside four niced jobs)."""
    os.nice(19)
    with contextlib.suppress(OSError):
        os.setsid()  # fails when already a session leader, which is fine
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text("19")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plans", nargs="+", metavar="PLAN.yaml")
    parser.add_argument("--only", help="run only this comparison (a plan's 'comparison' name)")
    parser.add_argument("--job", action="append", default=[], help="run only this job id (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs, done / pending / blocked, and exit")
    parser.add_argument("--resume", action="store_true", help="continue a half-finished job's run directory")
    parser.add_argument("--nice", action="store_true", help="lowest CPU priority (nice 19, own scheduling group)")
    parser.add_argument("--results-dir", default=str(ROOT / "results"), help="default: benchmarks/results")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "campaign"),
                        help="run directories (git-ignored; default benchmarks/runs/campaign)")
    parser.add_argument("--machine", help="results folder name (default: the GPU name or cpu-<threads>core)")
    parser.add_argument("--data-root", default=os.environ.get("DUALSEG_DATA"),
                        help="folder holding the datasets (default: $DUALSEG_DATA, else the configs' data.root)")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="multiply every budget (tests of the path; needs --results-dir outside benchmarks/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra KEY=VALUE for every job (tests; needs --results-dir outside benchmarks/)")
    parser.add_argument("--clock", choices=("wall", "process"), default="wall",
                        help="what the budgets count: wall-clock time, or this process's CPU time (a shared CPU "
                        "machine: equal budgets stay equal compute); never mixed inside a comparison")
    parser.add_argument("--quick", action="store_true", help="apply the jobs' 'quick' overrides (tests)")
    parser.add_argument("--first", type=int, help="only the first N seeds/lrs of each plan entry (tests)")
    parser.add_argument("--stand-in", action="append", default=[], metavar="KEY=VALUE",
                        help="replace the plans' placeholder overrides by this (tests)")
    parser.add_argument("--wait-sweeps", type=float, default=0.0, metavar="MIN",
                        help="a from_sweep job whose sweeps another campaign process is running waits up to MIN "
                        "minutes for their results (two streams on one machine); default: fail at once")
    parser.add_argument("--stop-after", type=float, metavar="MIN",
                        help="start no job that would end later than MIN minutes from now (wall-clock windows)")
    args = parser.parse_args(argv)
    try:
        default_results = Path(args.results_dir).resolve() == (ROOT / "results").resolve()
        testing = args.budget_scale != 1.0 or args.overrides or args.first or args.stand_in or args.quick
        if testing and default_results and not args.dry_run:
            raise CampaignError("--budget-scale/--set/--first/--stand-in/--quick runs are tests: write them elsewhere "
                                "with --results-dir DIR (benchmarks/results holds only the plans' own runs)")
        if args.nice:
            lower_priority()
        plans = [load_plan(p, args.first) for p in args.plans]
        if args.stand_in:
            stand_in(plans, args.stand_in)
        return run_plans(plans, args)
    except DualsegError as e:  # plan problems and the package's own one-line errors
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
