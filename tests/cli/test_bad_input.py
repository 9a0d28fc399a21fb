"""The bad-input catalogue through the CLI (docs/errors.md): each case exits non-zero with one line that names the
problem and the file or key, shows no traceback (unless ``--debug``), and leaves nothing half-written behind.

Most cases call ``dualseg.cli.main`` in-process on tiny generated datasets (6 images of 32x32); the traceback
cases run the real command in a subprocess.
"""

from __future__ import annotations

import errno
import importlib
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import dualseg
import dualseg.checkpoint as checkpoint_module
import dualseg.safety.atomic as atomic_module
from dualseg.cli import main

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = """\
name: tiny
model: {name: unet, args: {channels: [4, 8, 16]}}
train: {epochs: 1, batch_size: 2, iters_per_epoch: 3, precision: fp32, threads: 1}
"""


# --- helpers ----------------------------------------------------------------------------------------------------
def make_data(root: Path, n: int = 6, size: int = 32, image=None, mask=None) -> Path:
    """``root/images/<i>.png`` and ``root/masks/<i>.png``: gray uint8 images, 0/255 masks (or the given arrays)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = image(i) if image else rng.integers(0, 255, (size, size), dtype=np.uint8)
        m = mask(i) if mask else np.where(rng.random((size, size)) > 0.5, 255, 0).astype(np.uint8)
        save(img, root / "images" / f"{i}.png")
        save(m, root / "masks" / f"{i}.png")
    return root


def save(array: np.ndarray, path: Path) -> None:
    if path.suffix == ".tif":
        tifffile.imwrite(path, array)
    else:
        Image.fromarray(array).save(path)


def train_argv(tmp_path: Path, root: Path, *overrides: str) -> list[str]:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    sets = [f"data.root={root}", f"output_dir={tmp_path / 'run'}", *overrides]
    return ["train", str(config), "--no-progress", *[a for s in sets for a in ("--set", s)]]


def assert_error(capsys, rc: int, *needles: str) -> str:
    """Exit 2, exactly one 'error: ...' line on stderr holding every needle, and no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in err
    return lines[0]


def assert_nothing_half_written(tmp_path: Path) -> None:
    """No run directory of a failed fresh run, and no temporary file anywhere."""
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.rglob("*.tmp"))


# --- data problems: check-data names each one (exit 1); train refuses with one line (exit 2) ----------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_tiff(root: Path) -> None:
    (root / "images/2.png").unlink()
    tifffile.imwrite(root / "images/2.tif", np.full((32, 32), 7, np.uint8))
    _truncate(root / "images/2.tif")


def _float_tiff(value: float) -> Callable[[Path], None]:
    def plant(root: Path) -> None:
        (root / "images/2.png").unlink()
        arr = np.ones((32, 32), np.float32)
        arr[3, 4] = value
        tifffile.imwrite(root / "images/2.tif", arr)

    return plant


DATA_PROBLEMS = {
    "image_without_mask": (lambda r: (r / "masks/2.png").unlink(), ["image without mask", "images/2.png"]),
    "mask_without_image": (lambda r: save(np.zeros((32, 32), np.uint8), r / "masks/9.png"),
                           ["mask without image", "masks/9.png"]),
    "duplicate_stem": (lambda r: save(np.zeros((32, 32), np.uint8), r / "images/3.tif"),
                       ["duplicate stem '3'", "3.png and 3.tif"]),
    "truncated_png": (lambda r: _truncate(r / "images/2.png"), ["cannot read image", "images/2.png"]),
    "truncated_tiff": (_truncated_tiff, ["cannot read TIFF", "images/2.tif"]),
    "zero_byte_file": (lambda r: (r / "images/2.png").write_bytes(b""), ["empty (0-byte) file", "images/2.png"]),
    "size_mismatch": (lambda r: save(np.zeros((28, 32), np.uint8), r / "masks/2.png"),
                      ["size mismatch", "images/2.png", "masks/2.png"]),
    "mask_values_outside_classes": (lambda r: save(np.full((32, 32), 128, np.uint8), r / "masks/2.png"),
                                    ["masks/2.png", "[128]", "outside the declared classes"]),
    "colour_mask": (lambda r: save(np.dstack([np.zeros((32, 32), np.uint8)] * 2 + [np.full((32, 32), 255, np.uint8)]),
                                   r / "masks/2.png"), ["masks/2.png", "colour mask"]),
    "nan_in_float_tiff": (_float_tiff(float("nan")), ["images/2.tif", "NaN or Inf"]),
    "inf_in_float_tiff": (_float_tiff(float("inf")), ["images/2.tif", "NaN or Inf"]),
}


@pytest.mark.parametrize("case", sorted(DATA_PROBLEMS))
def test_check_data_names_the_problem(case, tmp_path, capsys):
    plant, needles = DATA_PROBLEMS[case]
    root = make_data(tmp_path / "data")
    plant(root)
    assert main(["check-data", str(root)]) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1, out
    assert all(n in problems[0] for n in needles), (needles, problems[0])


@pytest.mark.parametrize("case", sorted(DATA_PROBLEMS))
def test_train_refuses_the_problem(case, tmp_path, capsys):
    plant, needles = DATA_PROBLEMS[case]
    root = make_data(tmp_path / "data")
    plant(root)
    assert_error(capsys, main(train_argv(tmp_path, root)), *needles)
    assert_nothing_half_written(tmp_path)


def test_worker_process_error_is_one_line(tmp_path, capsys):
    """A file that fails inside a DataLoader worker: the worker's traceback is not printed, the message is."""
    root = make_data(tmp_path / "data")
    _truncate(root / "images/2.png")
    assert_error(capsys, main(train_argv(tmp_path, root, "data.num_workers=1")), "cannot read image", "2.png")
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("verb", ["check-data", "train"])
@pytest.mark.parametrize(
    ("layout", "needles"),
    [
        ("missing", ["dataset folder not found", "data"]),
        ("empty", ["no 'images/' folder in", "data"]),
        ("empty_subfolders", ["holds no images", "images"]),
    ],
)
def test_missing_or_empty_dataset_folder(verb, layout, needles, tmp_path, capsys):
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "empty_subfolders":
        (root / "images").mkdir()
        (root / "masks").mkdir()
    argv = ["check-data", str(root)] if verb == "check-data" else train_argv(tmp_path, root)
    assert_error(capsys, main(argv), *needles)
    assert_nothing_half_written(tmp_path)


# --- accepted inputs: RGBA, 16-bit, mixed 0/1 and 0/255 masks --------------------------------------------------------
ACCEPTED = {
    "rgba": (dict(image=lambda i: np.full((32, 32, 4), 40 * i, np.uint8)), "png uint8 4ch"),
    "16_bit": (dict(image=lambda i: np.full((32, 32), 9000 * i, np.uint16)), "png uint16 1ch"),
    "mixed_01_and_0255_masks": (
        dict(mask=lambda i: np.tile(np.array([0, 1 if i % 2 else 255], np.uint8), (32, 16))),
        "3 mask(s) use 0/1 instead of 0/255",
    ),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_inputs(case, tmp_path, capsys):
    arrays, reported = ACCEPTED[case]
    root = make_data(tmp_path / "data", **arrays)
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert reported in out and "no problems found" in out
    assert main(train_argv(tmp_path, root)) == 0, capsys.readouterr().err
    assert (tmp_path / "run/checkpoints/last.pt").is_file()
    if case == "mixed_01_and_0255_masks":  # both conventions are read as the same two classes
        state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
        assert state["num_classes"] == 2 and state["description"]["mask_values"] == [[0, 0], [255, 1]]


# --- config problems ------------------------------------------------------------------------------------------------
CONFIG_PROBLEMS = [
    (["model.name=unett"], ["unknown model 'unett'", "(did you mean 'unet'?)"]),
    (["model.args={chanels: [4, 8]}"], ["model 'unet' has no option 'chanels'", "(did you mean 'channels'?)"]),
    (["model.in_channels=3"], ["model.in_channels=3", "images give 1 channel(s)", "set it to 1"]),
    (["train.epohcs=3"], ["unknown config key 'train.epohcs'", "(did you mean 'epochs'?)"]),
    (["train.batch_size=two"], ["train.batch_size: expected int", "'two'"]),
    (["model.num_classes=2.5"], ["model.num_classes", "2.5"]),
    (["train.deterministic=maybe"], ["train.deterministic: expected true or false"]),
    (["train.batch_size=0"], ["train.batch_size must be a positive integer, got 0"]),
    (["train.batch_size=-2"], ["train.batch_size must be a positive integer, got -2"]),
    (["train.epochs=0"], ["train.epochs must be a positive integer, got 0"]),
    (["train.epochs=-1"], ["train.epochs must be a positive integer, got -1"]),
    (["train.optimizer.name=adamx"], ["train.optimizer.name", "(did you mean 'adam'?)"]),
    (["loss=[{name: dcie}]"], ["unknown loss 'dcie'", "(did you mean 'dice'?)"]),
    (["data.dataset=isbi"], ["unknown dataset description 'isbi'", "(did you mean 'isbi2012'?)"]),
    (["data.root="], ["data.root is not set"]),
    (["data.patch_size=[30, 30]"],
     ["data.patch_size=[30, 30]", "divisible by 4", "nearest valid sizes: 28 or 32x28 or 32"]),
    (["data.resize=[50, 64]"], ["data.resize=[50, 64]", "divisible by 4", "48 or 52x64"]),
    (["model.args={channels: [4, 8, 16, 32, 64]}", "data.patch_size=[40, 40]"],
     ["data.patch_size=[40, 40]", "divisible by 16", "32 or 48"]),
    (["model.name=drfl", "model.args={preset: light}", "data.patch_size=[48, 48]"],
     ["data.patch_size=[48, 48]", "divisible by", "32 or 64"]),
    (["train.precision=fp16"], ["train.precision 'fp16' needs a CUDA GPU"]),
]


@pytest.mark.parametrize(("overrides", "needles"), CONFIG_PROBLEMS, ids=lambda v: "|".join(v) if isinstance(v, list)
                         and "=" in v[0] else None)
def test_config_problems(overrides, needles, tmp_path, capsys):
    if "precision=fp16" in overrides[0] and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    root = make_data(tmp_path / "data")
    assert_error(capsys, main(train_argv(tmp_path, root, *overrides)), *needles)
    assert_nothing_half_written(tmp_path)


def test_whole_images_of_a_size_the_model_cannot_take(tmp_path, capsys):
    root = make_data(tmp_path / "data", size=30)
    assert_error(capsys, main(train_argv(tmp_path, root)), "images/0.png (whole image; set data.patch_size",
                 "divisible by 4, got 30x30", "28 or 32")
    assert_nothing_half_written(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_requested_without_a_gpu(tmp_path, capsys):
    root = make_data(tmp_path / "data")
    assert_error(capsys, main(train_argv(tmp_path, root, "train.device=cuda")), "train.device is 'cuda'",
                 "no CUDA GPU is available", "train.device=cpu")
    assert_nothing_half_written(tmp_path)
    assert_error(capsys, main(["predict", str(tmp_path), str(root / "images"), str(tmp_path / "p"), "--device",
                               "cuda"]), "no CUDA GPU is available")


def test_config_files(tmp_path, capsys):
    assert_error(capsys, main(["train", str(tmp_path / "missing.yaml")]), "config file not found", "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    assert_error(capsys, main(["train", str(bad)]), "bad.yaml is not valid YAML at line 2, column 1")
    good = tmp_path / "good.yaml"
    good.write_text(TINY_CONFIG)
    assert_error(capsys, main(["train", str(good), "--set", "train.epochs"]), "--set expects KEY=VALUE")


def test_yaml_that_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    assert_error(capsys, main(["train", str(evil)]), "evil.yaml is not valid YAML at line 1", "python/object")
    assert not marker.exists()


# --- output folder: unwritable, full ----------------------------------------------------------------------------
def test_output_dir_blocked_by_a_file(tmp_path, capsys):
    root = make_data(tmp_path / "data")
    (tmp_path / "blocker").write_text("a file, not a folder")
    argv = train_argv(tmp_path, root, f"output_dir={tmp_path / 'blocker/run'}")
    assert_error(capsys, main(argv), "blocker/run", "a file is in the way")
    assert (tmp_path / "blocker").read_text() == "a file, not a folder"


def test_output_dir_not_writable(tmp_path, capsys, monkeypatch):
    """Permission denied on the first file of the run (simulated: the tests may run as root)."""
    root = make_data(tmp_path / "data")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(atomic_module.tempfile, "mkstemp", denied)
    assert_error(capsys, main(train_argv(tmp_path, root)), "Permission denied", "/run",
                 "choose a folder you can write to")
    assert_nothing_half_written(tmp_path)


def _disk_full_torch_save(real_save):
    def save_half_then_fail(obj, f, *args, **kwargs):
        f.write(b"\x00" * 100)  # part of the file reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    return save_half_then_fail


def test_output_dir_full_on_a_fresh_run(tmp_path, capsys, monkeypatch):
    root = make_data(tmp_path / "data")
    monkeypatch.setattr(checkpoint_module.torch, "save", _disk_full_torch_save(torch.save))
    assert_error(capsys, main(train_argv(tmp_path, root)), "cannot write", ".pt", "No space left on device")
    assert_nothing_half_written(tmp_path)


def test_output_dir_full_while_resuming_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    root = make_data(tmp_path / "data")
    assert main(train_argv(tmp_path, root)) == 0
    last = tmp_path / "run/checkpoints/last.pt"
    before = last.read_bytes()
    monkeypatch.setattr(checkpoint_module.torch, "save", _disk_full_torch_save(torch.save))
    argv = train_argv(tmp_path, root, "train.epochs=2") + ["--resume", "--force"]
    assert_error(capsys, main(argv), "No space left on device")
    assert last.read_bytes() == before  # the previous checkpoint is intact and still resumable
    assert not list(tmp_path.rglob("*.tmp"))


# --- checkpoints --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A finished one-epoch run (read-only: copy it before changing it) and its dataset."""
    base = tmp_path_factory.mktemp("trained")
    root = make_data(base / "data")
    assert main(train_argv(base, root)) == 0
    return base / "run", root


def _copy_run(trained, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    return run


def test_corrupt_checkpoint(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    (run / "checkpoints/best.pt").write_bytes(b"\x00not a checkpoint")
    assert_error(capsys, main(["evaluate", str(run)]), "cannot load checkpoint", "best.pt", "corrupt")
    _truncate(run / "checkpoints/last.pt")
    config = tmp_path / "run/config.yaml"
    assert_error(capsys, main(["train", str(config), "--resume", "--no-progress", "--set", f"output_dir={run}"]),
                 "cannot load checkpoint", "last.pt")
    assert (run / "checkpoints/last.pt").exists()  # a failed resume removes nothing


class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.mark.parametrize("fmt", ["torch_zip", "plain_pickle"])
def test_checkpoint_that_would_run_code_is_refused(fmt, trained, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"
    payload = {"model": _WritesMarker(marker), "config": {}}
    if fmt == "torch_zip":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload))
    argv = ["predict", str(evil), str(trained[1] / "images"), str(tmp_path / "pred")]
    assert_error(capsys, main(argv), "cannot load checkpoint", "evil.pt", "refused")
    assert not marker.exists() and not (tmp_path / "pred").exists()


def test_file_that_is_not_a_dualseg_checkpoint(trained, tmp_path, capsys):
    weights = tmp_path / "weights.pt"
    torch.save(dualseg.create_model("unet", in_channels=1, num_classes=2).state_dict(), weights)
    assert_error(capsys, main(["predict", str(weights), str(trained[1] / "images"), str(tmp_path / "pred")]),
                 "weights.pt is not a dualseg checkpoint")


def test_checkpoint_holding_another_models_weights(trained, tmp_path, capsys):
    state = torch.load(trained[0] / "checkpoints/best.pt", weights_only=True)
    state["model"] = dualseg.create_model("unet", in_channels=1, num_classes=3, channels=[4, 8, 16]).state_dict()
    torch.save(state, tmp_path / "mixed.pt")
    assert_error(capsys, main(["predict", str(tmp_path / "mixed.pt"), str(trained[1] / "images"),
                               str(tmp_path / "pred")]), "mixed.pt", "does not fit model 'unet'",
                 "head.bias: stored [3], model [2]")


def test_resume_with_another_class_count(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    argv = train_argv(tmp_path, trained[1], "model.num_classes=3") + ["--resume", "--force"]
    assert_error(capsys, main(argv), "last.pt holds model 'unet'", "2 classes", "start a new run")
    assert (run / "checkpoints/last.pt").exists()


def test_resume_with_a_changed_config(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    argv = train_argv(tmp_path, trained[1], "train.epochs=2") + ["--resume"]
    assert_error(capsys, main(argv), "--resume: the config differs", "train.epochs: 1 -> 2", "--force")
    assert main(argv + ["--force"]) == 0
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header + epochs 1 and 2


def test_run_directory_guards(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert_error(capsys, main(train_argv(tmp_path, trained[1])), "already holds a run", "--resume")
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # the existing run is untouched
    argv = train_argv(tmp_path, trained[1], f"output_dir={tmp_path / 'fresh'}") + ["--resume"]
    assert_error(capsys, main(argv), "--resume: no checkpoint at", "fresh/checkpoints/last.pt")
    assert_error(capsys, main(["evaluate", str(tmp_path)]), "holds no checkpoints/best.pt")


# --- predict inputs -------------------------------------------------------------------------------------------------
def test_predict_inputs(trained, tmp_path, capsys):
    run = trained[0]
    assert_error(capsys, main(["predict", str(run), str(tmp_path / "nope"), str(tmp_path / "p")]),
                 "input not found", "nope")
    (tmp_path / "empty").mkdir()
    assert_error(capsys, main(["predict", str(run), str(tmp_path / "empty"), str(tmp_path / "p")]),
                 "holds no images", "empty")
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((32, 32, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    assert_error(capsys, main(["predict", str(run), str(tmp_path / "five.tif"), str(tmp_path / "p")]),
                 "five.tif", "5 channels", "the 1 the model expects")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 32, 32), np.uint8))  # five pages
    assert_error(capsys, main(["predict", str(run), str(tmp_path / "stack.tif"), str(tmp_path / "p")]),
                 "stack.tif holds 5 pages/frames", "one file per slice")
    assert not list(tmp_path.rglob("*.tmp"))


# --- tracebacks: only with --debug (a real process) -----------------------------------------------------------------
def test_traceback_only_with_debug(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "dualseg", "check-data", str(tmp_path / "nope")]
    plain = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [f"error: dataset folder not found: {tmp_path / 'nope'}; set "
                                                 "data.root (or --data) to an existing folder"]
    debug = subprocess.run(argv[:3] + ["--debug"] + argv[3:], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "dataset folder not found" in debug.stderr



@pytest.mark.parametrize(
    ("verb", "argv", "hint"),
    [
        ("fetch_data", ["fetch-data", "drive", "--dest", "x"], "download resumes from its .part file"),
        ("train", ["train", "cfg.yaml"], "--resume"),
        ("models", ["models"], None),
    ],
)
def test_ctrl_c_gives_the_verbs_own_hint(monkeypatch, capsys, verb, argv, hint):
    module = importlib.import_module(f"dualseg.cli.{verb}")

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err == "interrupted" if hint is None else (err.startswith("interrupted; ") and hint in err)
