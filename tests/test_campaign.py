"""``benchmarks/campaign.py`` and ``benchmarks/comparisons.py`` on synthetic plans and job JSONs: plan expansion,
the learning-rate sweep rule, skip/resume, the machine-mixing error, the statistics against SciPy and hand-computed
values, the verdict rule and the generated comparisons.json / COMPARISONS.md."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import campaign  # noqa: E402
import comparisons  # noqa: E402

from dualseg.benchmark import machine  # noqa: E402

PLAN = """
comparison: toy
dataset: isbi2012
split: test, toy
arms:
  m: {model: drfl, role: method}
  b: {model: unet, role: baseline}
pairs: [{method: m, baseline: b}]
defaults: {budget_min: 2, split: test, overrides: [train.epochs=1000]}
jobs:
  - {id: sweep_b, arm: b, config: configs/isbi2012/unet.yaml, sweep: true, seed: 0, budget_min: 1, split: val,
     lr: [0.001, 0.01, 0.1]}
  - {id: m, arm: m, config: configs/isbi2012/drfl_ss_light.yaml, seed: [0, 1, 2]}
  - {id: b, arm: b, config: configs/isbi2012/unet.yaml, seed: [0, 1, 2], lr: from_sweep}
"""

REQUIRED_KEYS = ["method", "baseline", "dataset", "split", "metric", "budget_min", "machine", "seeds",
                 "method_scores", "baseline_scores", "method_steps", "baseline_steps", "diff_mean", "diff_ci95",
                 "p_value", "verdict"]


@pytest.fixture
def plan(tmp_path: Path) -> campaign.Plan:
    path = tmp_path / "toy.yaml"
    path.write_text(PLAN)
    return campaign.load_plan(path)


def fake_result(job: campaign.Job, per_case: dict[str, float], info: dict | None = None, lr: float = 0.01,
                curve: list[float] | None = None, steps: int = 100) -> dict:
    values = curve or [0.5, 0.6, 0.7, 0.75, 0.76]
    return {
        "job": job.id, "arm": job.arm, "role": "baseline" if job.arm == "b" else "method", "seed": job.seed,
        "lr": lr, "sweep": job.sweep, "budget_min": job.budget_min, "split": job.split,
        "convention": "per_image", "per_case_dice": per_case, "mean": float(np.mean(list(per_case.values()))),
        "steps": steps, "stopped_by": "time", "data_wait_mean": 0.01, "data_wait_max": 0.01, "precision": "fp32",
        "train_minutes": job.budget_min,
        "val_curve": [{"minutes": float(i + 1), "val_dice": v} for i, v in enumerate(values)],
        "machine": info or machine(),
    }


# --- plans ----------------------------------------------------------------------------------------------------
def test_plan_expands_seeds_and_lrs_and_merges_defaults(plan: campaign.Plan) -> None:
    ids = [j.id for j in plan.jobs]
    # sweeps first, then seed by seed (a campaign stopped early leaves equal seeds per arm)
    assert ids == ["sweep_b_lr0.001", "sweep_b_lr0.01", "sweep_b_lr0.1", "m_s0", "b_s0", "m_s1", "b_s1", "m_s2",
                   "b_s2"]
    sweep, m1 = plan.jobs[1], plan.jobs[5]
    assert (sweep.lr, sweep.seed, sweep.budget_min, sweep.split, sweep.sweep) == (0.01, 0, 1, "val", True)
    assert (m1.seed, m1.budget_min, m1.split, m1.comparison) == (1, 2, "test", "toy")
    assert m1.overrides == ["train.epochs=1000"]


def test_plan_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLAN.replace("arm: m, config", "arm: x, config"))
    with pytest.raises(campaign.CampaignError, match="names arm 'x'"):
        campaign.load_plan(bad)
    bad.write_text(PLAN.replace("sweep: true,", "swep: true,"))
    with pytest.raises(campaign.CampaignError, match=r"unknown keys \['swep'\]"):
        campaign.load_plan(bad)


def test_placeholder_blocks_a_job(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PLAN.replace("overrides: [train.epochs=1000]", "overrides: ['data.split=TODO(clean split)']"))
    assert all(j.blocked == "data.split=TODO(clean split)" for j in campaign.load_plan(path).jobs)


@pytest.mark.parametrize("path", sorted((REPO / "benchmarks/plans").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_plans_load_and_their_configs_validate(path: Path) -> None:
    from dualseg.config import load_config

    plan = campaign.load_plan(path)
    for arm in plan.arms:
        seeds = {j.seed for j in plan.jobs if j.arm == arm and not j.sweep}
        assert len(seeds) >= 3, f"{arm}: at least 3 seeds"
    for job in plan.jobs:
        job = dataclasses.replace(job, overrides=[o for o in job.overrides if campaign.PLACEHOLDER not in o])
        lr = 0.001 if job.lr == campaign.FROM_SWEEP else job.lr
        cfg = load_config(REPO / job.config, campaign.recipe_overrides(job, lr, None, []))
        assert "train.epochs" not in " ".join(job.overrides), "the recipe's epochs set its schedule's shares"
        assert cfg.train.early_stopping is None and cfg.train.val_every == 1


# --- the sweep ------------------------------------------------------------------------------------------------
def test_from_sweep_takes_the_best_validation_lr(plan: campaign.Plan) -> None:
    sweeps = plan.jobs[:3]
    done = {j.id: fake_result(j, {"a": d}, lr=j.lr) for j, d in zip(sweeps[:2], [0.7, 0.8])}
    assert campaign.sweep_choice(plan, "b", done) == (None, ["sweep_b_lr0.1"])
    with pytest.raises(campaign.CampaignError, match="needs the sweep jobs"):
        campaign.resolved_lr(plan.jobs[4], plan, done)
    done[sweeps[2].id] = fake_result(sweeps[2], {"a": 0.75}, lr=0.1)
    assert campaign.resolved_lr(plan.jobs[4], plan, done) == 0.01
    done[sweeps[2].id] = fake_result(sweeps[2], {"a": 0.8}, lr=0.1)  # a tie: the first in plan order
    assert campaign.resolved_lr(plan.jobs[4], plan, done) == 0.01
    assert campaign.resolved_lr(plan.jobs[3], plan, done) is None  # the method keeps its config's lr


# --- the runner: skip, write at once, machines, resume ----------------------------------------------------------
def _args(tmp_path: Path, plan_path: Path, *extra: str) -> list[str]:
    return [str(plan_path), "--results-dir", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"),
            "--machine", "box", *extra]


def test_runner_skips_done_jobs_and_writes_each_result(tmp_path: Path, plan: campaign.Plan, monkeypatch) -> None:
    calls = []

    def fake_run_job(job, plan, recipe, run, run_dir, resume):
        calls.append((job.id, recipe))
        lr = [float(o.split("=")[1]) for o in recipe if o.startswith("train.optimizer.lr=")]
        return fake_result(job, {"a": 0.5 + 0.1 * len(calls)}, lr=lr[0] if lr else 0.001)

    monkeypatch.setattr(campaign, "run_job", fake_run_job)
    folder = tmp_path / "results/box/campaign/toy"
    folder.mkdir(parents=True)
    (folder / "m_s1.json").write_text(json.dumps(fake_result(plan.jobs[5], {"a": 0.9})))
    assert campaign.main(_args(tmp_path, plan.path)) == 0
    ran = [c[0] for c in calls]
    assert "m_s1" not in ran and len(ran) == 8
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(j.id for j in plan.jobs)
    # the sweep's best (the last sweep job scored highest) reached the baseline's overrides
    b_recipe = dict(calls)["b_s0"]
    assert "train.optimizer.lr=0.1" in b_recipe and "eval.surface_metrics=false" in b_recipe
    calls.clear()
    assert campaign.main(_args(tmp_path, plan.path)) == 0 and calls == []  # everything done: nothing runs


def test_runner_refuses_to_mix_machines(tmp_path: Path, plan: campaign.Plan, capsys) -> None:
    folder = tmp_path / "results/box/campaign/toy"
    folder.mkdir(parents=True)
    other = {**machine(), "cpu": "Some Other CPU", "gpu": None}
    (folder / "m_s0.json").write_text(json.dumps(fake_result(plan.jobs[3], {"a": 0.9}, info=other)))
    assert campaign.main(_args(tmp_path, plan.path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Some Other CPU" in err and "never mix machines" in err


def test_scaled_runs_must_not_write_into_benchmarks(plan: campaign.Plan, capsys) -> None:
    assert campaign.main([str(plan.path), "--budget-scale", "0.1"]) == 2
    assert "--results-dir" in capsys.readouterr().err


def test_a_half_finished_job_needs_resume(tmp_path: Path, plan: campaign.Plan) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints/last.pt").write_bytes(b"x")
    job = plan.jobs[3]
    with pytest.raises(campaign.CampaignError, match="add --resume"):
        campaign.run_job(job, plan, [], campaign.run_overrides(job, run_dir, 1, 1), run_dir, resume=False)


def test_read_curve_and_data_wait(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,lr,val_dice,data_wait,time_s\n1,0.1,,0.02,30\n2,0.1,0.5,0.04,60\n3,0.1,0.6,0.03,90\n")
    assert campaign.read_curve(csv_path, 10) == [{"epoch": 2, "step": 20, "minutes": 1.0, "val_dice": 0.5},
                                                 {"epoch": 3, "step": 30, "minutes": 1.5, "val_dice": 0.6}]
    mean, top = campaign.data_wait_fraction(csv_path)
    assert mean == pytest.approx(0.03) and top == 0.04


# --- statistics -------------------------------------------------------------------------------------------------
def test_bootstrap_matches_scipy_and_the_normal_approximation() -> None:
    d = np.random.default_rng(3).normal(0.02, 0.05, size=60)
    ours = comparisons.bootstrap_ci(d)
    ref = stats.bootstrap((d,), np.mean, method="percentile", n_resamples=10_000, confidence_level=0.95,
                          rng=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(ours[0] - ref.low) < 0.05 * width and abs(ours[1] - ref.high) < 0.05 * width
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)  # large-sample check: mean ± 1.96 SE
    assert ours == pytest.approx([d.mean() - half, d.mean() + half], abs=0.1 * half)
    assert comparisons.bootstrap_ci([0.03] * 7) == pytest.approx([0.03, 0.03])


@pytest.mark.parametrize("ci, p, expected", [
    ([0.01, 0.05], 0.01, "better"), ([-0.05, -0.01], 0.001, "worse"),
    ([0.01, 0.05], 0.2, "no detectable difference"), ([-0.01, 0.05], 0.01, "no detectable difference"),
    ([0.0, 0.05], 0.01, "no detectable difference"), ([0.01, 0.05], None, "no detectable difference"),
])
def test_verdict_rule(ci: list[float], p: float | None, expected: str) -> None:
    assert comparisons.verdict(ci, p) == expected


def test_late_gain_in_dice_points() -> None:
    curve = [{"minutes": m, "val_dice": v} for m, v in [(2, 0.5), (4, 0.7), (8, 0.72), (10, 0.726)]]
    assert comparisons.late_gain(curve) == pytest.approx(0.6)  # best 0.726 vs best up to 8 min 0.72
    curve[-1]["val_dice"] = 0.70  # a late drop is no gain
    assert comparisons.late_gain(curve) == pytest.approx(0.0)


def test_comparison_row_by_hand(plan: campaign.Plan) -> None:
    cases = ["c1", "c2", "c3", "c4", "c5", "c6"]
    m_vals = {0: [0.80, 0.70, 0.90, 0.60, 0.75, 0.85], 1: [0.82, 0.72, 0.88, 0.62, 0.73, 0.87],
              2: [0.81, 0.71, 0.89, 0.61, 0.74, 0.86]}
    b_vals = {s: [v - 0.05 - 0.01 * i for i, v in enumerate(m_vals[s])] for s in range(3)}  # distinct diffs
    done = {}
    for job in plan.jobs:
        if job.sweep:
            done[job.id] = fake_result(job, {"v": 0.5}, lr=job.lr)
        else:
            vals = (m_vals if job.arm == "m" else b_vals)[job.seed]
            done[job.id] = fake_result(job, dict(zip(cases, vals)), steps=100 + job.seed,
                                       curve=[0.5, 0.6, 0.7, 0.79, 0.8] if job.arm == "b" else None)
    row = comparisons.compare_pair(plan, plan.pairs[0], done)
    assert list(row)[: len(REQUIRED_KEYS)] == REQUIRED_KEYS
    m_mean = np.mean([m_vals[s] for s in range(3)], axis=0)  # seed-averaged per case
    b_mean = np.mean([b_vals[s] for s in range(3)], axis=0)
    diff = m_mean - b_mean
    assert row["diff_mean"] == pytest.approx(diff.mean())
    assert row["p_value"] == pytest.approx(stats.wilcoxon(m_mean, b_mean).pvalue)
    assert row["method_scores"] == pytest.approx([np.mean(m_vals[s]) for s in range(3)])
    assert row["baseline_steps"] == [100, 101, 102] and row["seeds"] == [0, 1, 2]
    assert row["method"] == "drfl" and row["baseline"] == "unet" and row["budget_min"] == 2
    assert diff == pytest.approx([0.05, 0.06, 0.07, 0.08, 0.09, 0.10])
    assert row["p_value"] == pytest.approx(2 / 2**6)  # exact: all 6 differences positive, two-sided
    assert row["diff_ci95"][0] >= 0.05 and row["diff_ci95"][1] <= 0.10 and row["verdict"] == "better"
    assert row["baseline_converged"] is False and row["baseline_val_gain_last20"] == pytest.approx(1.0)
    assert any("not converged" in n for n in row["notes"])


def test_comparisons_writes_json_markdown_and_curves(tmp_path: Path, plan: campaign.Plan) -> None:
    folder = tmp_path / "results/box/campaign/toy"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for job in plan.jobs:
        base = 0.7 if job.arm == "b" else 0.8
        vals = {f"c{i}": float(base + rng.normal(0, 0.02)) for i in range(20)}
        lr = 0.01 if job.lr == campaign.FROM_SWEEP else float(job.lr or 0.001)
        (folder / f"{job.id}.json").write_text(json.dumps(fake_result(job, vals, lr=lr)))
    md = tmp_path / "COMPARISONS.md"
    assert comparisons.main(["--plans", str(plan.path), "--results-dir", str(tmp_path / "results"), "--md", str(md),
                             "--curves-dir", str(tmp_path / "curves")]) == 0
    rows = json.loads((tmp_path / "results/box/comparisons.json").read_text())
    assert len(rows) == 1 and rows[0]["verdict"] == "better" and rows[0]["p_value"] < 1e-4
    text = md.read_text()
    assert "**better**" in text and "## Rules" in text and "curves/box/toy.png" in text
    assert (tmp_path / "curves/box/toy.png").stat().st_size > 1000


def test_first_quick_and_stand_in_for_tests_of_the_path(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    text = PLAN.replace("overrides: [train.epochs=1000]}", "overrides: ['data.split=TODO(x)'], quick: [a=1]}")
    path.write_text(text.replace("seed: [0, 1, 2]}\n  - {id: b,", "seed: [0, 1, 2], quick: [b=2]}\n  - {id: b,"))
    plan = campaign.load_plan(path, first=1)
    assert [j.id for j in plan.jobs] == ["sweep_b_lr0.001", "m_s0", "b_s0"]  # ids as in the full plan
    assert plan.jobs[1].quick == ["a=1", "b=2"] and plan.jobs[2].quick == ["a=1"]
    campaign.stand_in([plan], ["data.split.test_fraction=0.2"])
    assert plan.jobs[0].overrides == ["data.split.test_fraction=0.2"] and plan.jobs[0].blocked is None


def test_stop_after_starts_no_job_that_would_end_too_late(tmp_path: Path, plan: campaign.Plan, monkeypatch,
                                                           capsys) -> None:
    monkeypatch.setattr(campaign, "run_job", lambda *a: pytest.fail("no job may start"))
    assert campaign.main(_args(tmp_path, plan.path, "--stop-after", "1.5")) == 0  # 1 min budget + 1 min overhead
    assert "stop: 9 jobs left" in capsys.readouterr().out


def test_jobs_count_the_budget_on_the_chosen_clock_and_run_the_schedule_over_it(tmp_path: Path) -> None:
    from dualseg.config import load_config

    job = campaign.Job(id="a", config="configs/isbi2012/unet.yaml", arm="a", comparison="c", seed=3, budget_min=2.5)
    run = campaign.run_overrides(job, tmp_path / "run", 2.5, 1, "process")
    cfg = load_config(REPO / job.config, run)
    assert (cfg.train.time_limit_min, cfg.train.time_limit_clock, cfg.train.schedule.horizon) == (2.5, "process",
                                                                                                    "time")
    assert cfg.seed == 3 and cfg.train.threads == 1


def test_machine_key_names_the_clock() -> None:
    info = machine()
    assert campaign.machine_key(info) != campaign.machine_key({**info, "clock": "process"})


def test_prepare_packs_parts_that_join_back(tmp_path: Path) -> None:
    import subprocess

    sys.path.insert(0, str(REPO / "benchmarks/gpu"))
    import prepare

    data = tmp_path / "data"
    for i, name in enumerate(prepare.DATASETS):
        (data / name / "images").mkdir(parents=True)
        (data / name / "images" / "x.bin").write_bytes(np.random.default_rng(i).bytes(700_000))
    parts = prepare.pack_parts(data, tmp_path / "carry", part_mib=1)
    assert len(parts) == 3 and all(p.stat().st_size <= 2**20 for p in parts)  # 2.8 MB of random bytes
    out = tmp_path / "back"
    out.mkdir()
    joined = b"".join(p.read_bytes() for p in sorted(parts, key=lambda p: int(p.parent.name.split("-")[1])))
    subprocess.run(["tar", "-xJ", "-C", str(out)], input=joined, check=True)
    for name in prepare.DATASETS:
        assert (out / name / "images/x.bin").read_bytes() == (data / name / "images/x.bin").read_bytes()


def test_seed_placeholder_and_case_groups(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("overrides: [train.epochs=1000]", "overrides: ['data.split.fold={seed}']")
                    + 'case_group: "_copy\\\\d+$"\n')
    plan = campaign.load_plan(path)
    assert [j.overrides for j in plan.jobs if j.arm == "m"] == [[f"data.split.fold={s}"] for s in (0, 1, 2)]
    assert plan.case_group == "_copy\\d+$"
    # two seeds; slice a has copies 0 and 1, slice b one copy; NaN (undefined) values are skipped
    seeds = [{"per_case_dice": {"a_copy0": 0.2, "a_copy1": 0.4, "b_copy0": 0.9}},
             {"per_case_dice": {"a_copy0": 0.6, "a_copy1": float("nan"), "b_copy0": 0.7}}]
    assert comparisons.seed_mean_cases(seeds, plan.case_group) == pytest.approx({"a": 0.4, "b": 0.8})
    assert comparisons.seed_mean_cases(seeds) == pytest.approx({"a_copy0": 0.4, "a_copy1": 0.4, "b_copy0": 0.8})


def test_a_second_stream_waits_for_the_sweeps_the_first_is_running(tmp_path: Path, plan: campaign.Plan,
                                                                     monkeypatch, capsys) -> None:
    """Two campaign processes on one machine: the one given the baseline's arms waits (--wait-sweeps) for the
    sweep results the other writes into the shared folder, takes their best lr, and skips jobs done meanwhile."""
    folder = tmp_path / "results/box/campaign/toy"
    folder.mkdir(parents=True)
    sweeps = plan.jobs[:3]
    (folder / f"{sweeps[0].id}.json").write_text(json.dumps(fake_result(sweeps[0], {"a": 0.7}, lr=sweeps[0].lr)))
    naps = []

    def other_stream_lands(seconds: float) -> None:  # the other process finishes the last two sweeps and b_s1
        naps.append(seconds)
        for job, dice in zip(sweeps[1:], [0.9, 0.6]):
            (folder / f"{job.id}.json").write_text(json.dumps(fake_result(job, {"a": dice}, lr=job.lr)))
        b_s1 = next(j for j in plan.jobs if j.id == "b_s1")
        (folder / "b_s1.json").write_text(json.dumps(fake_result(b_s1, {"a": 0.8})))

    monkeypatch.setattr(campaign.time, "sleep", other_stream_lands)
    calls = []
    monkeypatch.setattr(campaign, "run_job", lambda job, plan, recipe, *a: calls.append((job.id, recipe))
                        or fake_result(job, {"a": 0.5}))
    with pytest.raises(campaign.CampaignError, match="needs the sweep jobs"):  # no waiting asked: fail at once
        campaign.lr_when_ready(plan.jobs[4], plan, folder, {}, wait_min=0)
    assert campaign.main(_args(tmp_path, plan.path, "--job", "b_s0", "--job", "b_s1", "--wait-sweeps", "5")) == 0
    assert len(naps) == 1 and "waiting for the sweep jobs" in capsys.readouterr().out
    assert [c[0] for c in calls] == ["b_s0"]  # b_s1 was done meanwhile by the other process
    assert "train.optimizer.lr=0.01" in calls[0][1]  # sweep_b_lr0.01 scored best (0.9)
