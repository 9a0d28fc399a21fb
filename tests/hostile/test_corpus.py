"""The hostile-input corpus (tests/hostile/corpus.py) on every verb, and the guarantees that need more than one
command: the output manifest, file modes, the run-directory lock across processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dualseg.cli import main
from dualseg.errors import DualsegError
from dualseg.safety.limits import PIXELS_ENV, check_pixels, out_of_memory_hint
from dualseg.safety.lock import LOCK_FILE, RunLock
from dualseg.safety.outputs import MANIFEST
from tests.hostile.corpus import CASES, TINY_CONFIG, make_data, make_run, run_case, save

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.verb}: {c.name}" for c in CASES])
def test_hostile_input_is_refused_cleanly(case, tmp_path):
    outcome = run_case(case, tmp_path / "case")
    assert not outcome.problems(), (outcome.problems(), outcome.stderr[-500:])


def test_corpus_covers_every_verb_that_takes_input():
    verbs = {c.verb for c in CASES}
    assert verbs >= {"check-data", "train", "evaluate", "predict", "export", "benchmark", "train-sr",
                     "make-sr-targets", "fetch-data", "convert-nnunet", "cv", "compare", "report"}


def _predict(run: Path, images: Path, out: Path, *flags: str) -> int:
    return main(["predict", str(run), str(images), str(out), "--no-progress", *flags])


def test_predict_replaces_its_own_files_and_a_strangers_only_with_overwrite(tmp_path, capsys):
    run, images = make_run(tmp_path / "run"), make_data(tmp_path / "data") / "images"
    out = tmp_path / "pred"
    assert _predict(run, images, out) == 0
    first = (out / "0.png").read_bytes()
    assert "0.png" in (out / MANIFEST).read_text().splitlines()
    assert _predict(run, images, out) == 0  # its own files: replaced without asking
    assert (out / "0.png").read_bytes() == first
    (out / MANIFEST).unlink()  # now the masks look like someone else's
    assert _predict(run, images, out) == 2
    assert "not written by dualseg; pass --overwrite" in capsys.readouterr().err
    assert _predict(run, images, out, "--overwrite") == 0


def test_written_files_follow_the_umask(tmp_path):
    run, images = make_run(tmp_path / "run"), make_data(tmp_path / "data") / "images"
    old = os.umask(0o027)
    try:
        from dualseg.safety.atomic import file_mode

        file_mode.cache_clear()
        assert _predict(run, images, tmp_path / "pred") == 0
    finally:
        os.umask(old)
        file_mode.cache_clear()
    assert (tmp_path / "pred" / "0.png").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "pred" / "overlays" / "0.png").stat().st_mode & 0o777 == 0o640


def test_large_legitimate_images_pass_the_pixel_limit(monkeypatch):
    check_pixels("fundus.png", 3504, 2336)  # the default never refuses this
    monkeypatch.setenv(PIXELS_ENV, "1000")
    with pytest.raises(DualsegError, match=f"more than the limit of 1,000.*raise {PIXELS_ENV}"):
        check_pixels("fundus.png", 3504, 2336)


def test_out_of_memory_names_what_to_lower():
    with pytest.raises(DualsegError, match="out of memory predicting x; lower --roi-size"), \
            out_of_memory_hint("predicting x", "--roi-size"):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 36 TB")
    with pytest.raises(RuntimeError, match="other"), out_of_memory_hint("x", "y"):
        raise RuntimeError("other")


def _holder(folder: Path) -> subprocess.Popen:
    code = ("import sys, time; from dualseg.safety.lock import RunLock\n"
            f"with RunLock({str(folder)!r}):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_names_the_holder_and_is_recovered_after_a_crash(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    proc = _holder(run)
    try:
        assert main(["evaluate", str(run)]) == 2  # a writer while another process holds the run
        err = capsys.readouterr().err
        assert f"is in use by pid {proc.pid} on " in err and "wait for it or choose another output_dir" in err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (run / LOCK_FILE).exists()  # the crashed holder's file is left behind ...
    with RunLock(run):  # ... and locked again at once: the kernel released the dead process's lock
        assert str(os.getpid()) in (run / LOCK_FILE).read_text()
    assert not (run / LOCK_FILE).exists()


def test_lock_is_reentrant_in_one_process(tmp_path):
    with RunLock(tmp_path), RunLock(tmp_path):
        pass
    assert not (tmp_path / LOCK_FILE).exists()


def _train(config: Path, data: Path, out: Path, *sets: str, pause: float = 0.3) -> subprocess.Popen:
    args = [f"data.root={data}", f"output_dir={out}", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DUALSEG_TEST_PAUSE_BEFORE_RENAME": str(pause)}
    return subprocess.Popen([sys.executable, "-m", "dualseg", "train", str(config), "--no-progress",
                             *[a for s in args for a in ("--set", s)]], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_trainings_into_one_folder_leave_one_runs_files(tmp_path):
    data = make_data(tmp_path / "data")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "run"
    # the first run pauses 1.5 s before each of its atomic renames, so it still holds the folder when the second
    # process, after its own start-up (seconds on a loaded machine), tries to take it
    first = _train(config, data, out, "train.epochs=2", "name=first", pause=1.5)
    deadline = time.monotonic() + 120
    while not (out / LOCK_FILE).exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = _train(config, data, out, "train.epochs=3", "name=second")
    _, err2 = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2 and f"is in use by pid {first.pid}" in err2 and "Traceback" not in err2
    assert "name: first" in (out / "config.yaml").read_text()
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]  # the first run's two epochs, nothing interleaved
    assert not (out / LOCK_FILE).exists()


def test_broken_link_is_named_not_reported_as_an_orphan_mask(tmp_path, capsys):
    root = make_data(tmp_path / "data")
    (root / "images/1.png").unlink()
    (root / "images/1.png").symlink_to(tmp_path / "gone.png")
    assert main(["check-data", str(root)]) == 1
    report = capsys.readouterr().out
    assert f"broken symbolic link: {root / 'images/1.png'} -> {tmp_path / 'gone.png'}" in report
    assert "mask without image" not in report


def test_a_failed_convert_leaves_no_destination(tmp_path):
    root = make_data(tmp_path / "data")
    save(np.zeros((32, 32), np.uint8), root / "masks" / "9.png")
    assert main(["convert-nnunet", str(root), "--dest", str(tmp_path / "raw" / "nn"), "--dataset-id", "3",
                 "--name", "x"]) == 2
    assert not (tmp_path / "raw").exists()
