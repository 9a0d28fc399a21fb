"""Lossless resume under SIGKILL: kill a training process again and again, resume it each time, compare.

    python benchmarks/kill_resume.py --kills 10            # -> benchmarks/results/<machine>/kill_resume.{json,md}

A tiny U-Net (dropout on, augmentation on, a checkpoint after every optimizer step) trains on a generated dataset
of 32x32 images. The reference run is uninterrupted (in this process; every checkpoint it writes is kept in memory
by step). The other run is a real ``dualseg train`` process, SIGKILLed at moments drawn from a seeded RNG (after a
random number of checkpoint writes plus a random delay, so kills land in computation, in data loading and inside
writes), and at least once deliberately while a checkpoint is being written (the test hook
``DUALSEG_TEST_PAUSE_BEFORE_RENAME`` holds each written file before its rename, and the kill comes when the temporary
file exists). After each kill the surviving ``last.pt`` must load and equal the reference's state at that step; at
the end the final weights and ``metrics.csv`` (without the timing columns) must equal the reference's.
tests/engine/test_engine_kill_resume.py runs a small version of the same experiment in CI.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dualseg.benchmark import git_commit, machine, machine_tag, write_result  # noqa: E402

CONFIG = """\
name: kill_resume
seed: 3
model: {{name: unet, args: {{channels: [4, 8, 16], dropout: 0.1}}}}
data: {{root: {root}}}
train: {{epochs: {epochs}, batch_size: 2, iters_per_epoch: {iters}, precision: fp32, threads: 1,
        checkpoint_every: 1, schedule: {{name: poly}}}}
"""


def make_dataset(root: Path, n: int = 8, size: int = 32) -> Path:
    """Gray images with bright discs and their 0/255 masks."""
    rng = np.random.default_rng(7)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 8)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image = np.clip(60 + 120 * mask + rng.normal(0, 20, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    return root


TIMING_COLUMNS = ("time_s", "data_wait")  # wall-clock measurements, different in every run


def metrics_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def reference_run(config: Path, out: Path) -> dict[int, dict[str, torch.Tensor]]:
    """Train uninterrupted in this process; return the model weights of every checkpoint written, by step."""
    import dualseg.engine.trainer as trainer_module
    from dualseg.config import load_config

    states: dict[int, dict[str, torch.Tensor]] = {}
    real_save = trainer_module.save_checkpoint

    def keep(state: dict[str, Any], path: Path) -> None:
        if Path(path).name == "last.pt":
            states[state["trainer"]["step"]] = {k: v.clone() for k, v in state["model"].items()}
        real_save(state, path)

    trainer_module.save_checkpoint = keep
    try:
        trainer_module.train(load_config(config, [f"output_dir={out}"]), progress=False)
    finally:
        trainer_module.save_checkpoint = real_save
    return states


def _start(config: Path, out: Path, resume: bool, pause_s: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "DUALSEG_TEST_PAUSE_BEFORE_RENAME": str(pause_s)}
    argv = [sys.executable, "-m", "dualseg", "train", str(config), "--no-progress", "--set", f"output_dir={out}"]
    return subprocess.Popen(argv + (["--resume"] if resume else []), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _kill_when(proc: subprocess.Popen, out: Path, during_write: bool, writes: int, delay_s: float) -> str | None:
    """Wait for the kill moment and SIGKILL; return its description, or None when the run finished first."""
    folder, last = out / "checkpoints", out / "checkpoints" / "last.pt"
    seen, changes = _inode(last), 0
    while proc.poll() is None:
        if during_write:
            if list(folder.glob(".last.pt.*.tmp")):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return "during a checkpoint write (temporary file present, not yet renamed)"
        else:
            ino = _inode(last)
            if ino is not None and ino != seen:
                seen, changes = ino, changes + 1
                if changes >= writes:
                    time.sleep(delay_s)
                    if proc.poll() is not None:
                        return None
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return f"{delay_s * 1000:.0f} ms after this process's checkpoint write {writes}"
        time.sleep(0.002)
    return None


def kill_resume_experiment(work: Path, kills: int, epochs: int, iters: int, seed: int = 0,
                           pause_s: float = 0.03, max_writes: int = 4) -> dict[str, Any]:
    """Run the experiment of the module docstring in ``work``; return its record (kills and equality checks)."""
    from dualseg.checkpoint import load_checkpoint

    root = make_dataset(work / "data")
    config = work / "config.yaml"
    config.write_text(CONFIG.format(root=root, epochs=epochs, iters=iters))
    reference = reference_run(config, work / "reference")
    out = work / "killed"
    rng = random.Random(seed)
    during_write_at = {rng.randrange(kills)} if kills else set()  # at least one kill inside a checkpoint write
    events: list[dict[str, Any]] = []
    for k in range(kills):
        during = k in during_write_at or rng.random() < 0.2
        writes, delay = rng.randint(1, max_writes), rng.uniform(0.0, 2 * pause_s)
        proc = _start(config, out, resume=(out / "checkpoints/last.pt").exists(), pause_s=pause_s)
        moment = _kill_when(proc, out, during, writes, delay)
        if moment is None:  # the run finished before this kill: nothing left to interrupt
            events.append({"kill": k + 1, "moment": "run finished first", "exit_code": proc.returncode})
            break
        temp_left = [p.name for p in (out / "checkpoints").glob(".*.tmp")]
        if not (out / "checkpoints/last.pt").exists():  # killed while writing the very first one: start again
            events.append({"kill": k + 1, "moment": moment, "epoch": 0, "iteration_in_epoch": 0, "step": 0,
                           "temporary_file_left": bool(temp_left), "checkpoint_equals_reference_at_step": True})
            continue
        state = load_checkpoint(out / "checkpoints/last.pt")  # the previous complete checkpoint survives
        t = state["trainer"]
        ref = reference[t["step"]]
        exact = all(torch.equal(v, ref[name]) for name, v in state["model"].items())
        events.append({"kill": k + 1, "moment": moment, "epoch": t["epoch"], "iteration_in_epoch": t["epoch_iter"],
                       "step": t["step"], "temporary_file_left": bool(temp_left),
                       "checkpoint_equals_reference_at_step": exact})
    final = _start(config, out, resume=(out / "checkpoints/last.pt").exists(), pause_s=0.0)
    _, stderr = final.communicate()
    if final.returncode != 0:
        raise RuntimeError(f"the final resume failed ({final.returncode}): {stderr[-2000:]}")
    ref_state = load_checkpoint(work / "reference/checkpoints/last.pt")
    got_state = load_checkpoint(out / "checkpoints/last.pt")
    weights_equal = all(torch.equal(v, got_state["model"][k]) for k, v in ref_state["model"].items())
    optimizer_equal = all(
        torch.equal(a, b) for sa, sb in zip(ref_state["optimizer"]["state"].values(),
                                            got_state["optimizer"]["state"].values(), strict=True)
        for a, b in zip([v for v in sa.values() if torch.is_tensor(v)], [v for v in sb.values() if torch.is_tensor(v)],
                        strict=True)
    )
    return {
        "budget": {"epochs": epochs, "iters_per_epoch": iters, "steps": epochs * iters, "batch_size": 2,
                   "image_size": "32x32", "model": "unet channels [4, 8, 16], dropout 0.1",
                   "checkpoint_every_steps": 1, "pause_before_rename_s": pause_s},
        "kills": events,
        "kills_done": sum(1 for e in events if "step" in e),
        "every_resume_exact": all(e.get("checkpoint_equals_reference_at_step", True) for e in events),
        "temporary_files_after_final_resume": [p.name for p in (out / "checkpoints").glob(".*.tmp")],
        "final_weights_equal": weights_equal,
        "final_optimizer_state_equal": optimizer_equal,
        "metrics_csv_equal": metrics_rows(work / "reference/metrics.csv") == metrics_rows(out / "metrics.csv"),
        "metrics_rows": len(metrics_rows(out / "metrics.csv")),
    }


def to_markdown(record: dict[str, Any], info: dict[str, Any]) -> str:
    b = record["budget"]
    lines = [
        "# Kill and resume (SIGKILL) - lossless resume",
        "",
        f"Machine: {info['cpu']}, {info['cores']} threads, torch {info['torch']}; commit {record['commit']}. "
        f"Budget: {b['epochs']} epochs x {b['iters_per_epoch']} steps (batch {b['batch_size']}, {b['image_size']}, "
        f"{b['model']}), a checkpoint after every step, each written file held {b['pause_before_rename_s']} s "
        "before its rename (test hook). Made by `python benchmarks/kill_resume.py`.",
        "",
        "| kill | moment | checkpoint that survived (epoch, iteration, step) | temporary file left | "
        "equals the uninterrupted run at that step |",
        "|---|---|---|---|---|",
    ]
    for e in record["kills"]:
        if "step" not in e:
            lines.append(f"| {e['kill']} | {e['moment']} | - | - | - |")
            continue
        lines.append(f"| {e['kill']} | {e['moment']} | {e['epoch']}, {e['iteration_in_epoch']}, {e['step']} | "
                     f"{'yes' if e['temporary_file_left'] else 'no'} | "
                     f"{'yes' if e['checkpoint_equals_reference_at_step'] else 'NO'} |")
    lines += [
        "",
        f"Final (after the last resume): weights equal: **{record['final_weights_equal']}**, optimizer state equal: "
        f"**{record['final_optimizer_state_equal']}**, `metrics.csv` equal (without `time_s`, `data_wait`): "
        f"**{record['metrics_csv_equal']}** ({record['metrics_rows']} rows); every resume exact: "
        f"**{record['every_resume_exact']}**; temporary files left after resuming: "
        f"{record['temporary_files_after_final_resume'] or 'none'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--iters", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/dualseg_kill_resume", help="scratch folder (emptied first)")
    args = parser.parse_args()
    import shutil

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    info = machine()  # before training sets its own thread count
    t0 = time.perf_counter()
    record = kill_resume_experiment(work, args.kills, args.epochs, args.iters, args.seed)
    record = {"kind": "kill-resume", "commit": git_commit(REPO), "machine": info, "seed": args.seed,
              "wall_s": round(time.perf_counter() - t0, 1), **record}
    path = write_result(REPO / "benchmarks" / "results", info, "kill_resume", record)
    (REPO / "benchmarks" / "results" / machine_tag(info) / "kill_resume.md").write_text(to_markdown(record, info))
    print(f"written: {path} and kill_resume.md")


if __name__ == "__main__":
    main()
