"""A corpus of hostile inputs for every verb, and the rules each must meet (issue 21).

Each :class:`Case` builds its inputs in a fresh folder and returns the command line. Running a case (in-process,
``dualseg.cli.main``) must give exit code 1 or 2, exactly one ``error:`` line on stderr (check-data: its report on
stdout, exit 1) with the expected words and no traceback, and leave the folder exactly as it was: every input file
byte for byte (SHA-256 before and after) and no file or folder added (a failing command leaves no new output folder
behind). ``python -m tests.hostile.corpus`` runs the whole corpus and prints the counts published in
docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

import dualseg
from dualseg.checkpoint import save_checkpoint
from dualseg.config import config_from_dict
from dualseg.data.descriptions import BINARY_0_255, DatasetDescription, description_to_dict

TINY_CONFIG = """\
name: tiny
model: {name: unet, args: {channels: [4, 8, 16]}}
train: {epochs: 1, batch_size: 2, iters_per_epoch: 2, precision: fp32, threads: 1, device: cpu}
"""
UNET_ARGS = {"channels": [4, 8, 16]}
MAX_LINE = 1000  # an error line longer than this floods the terminal: some value reached it uncut


# --- building blocks ----------------------------------------------------------------------------------------------
def save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        tifffile.imwrite(path, array)
    else:
        Image.fromarray(array).save(path)


def make_data(root: Path, n: int = 4, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        save(rng.integers(0, 255, (size, size), dtype=np.uint8), root / "images" / f"{i}.png")
        save(np.where(rng.random((size, size)) > 0.5, 255, 0).astype(np.uint8), root / "masks" / f"{i}.png")
    return root


def make_run(folder: Path, args: dict | None = None) -> Path:
    """A run directory with ``checkpoints/best.pt`` of a freshly built tiny U-Net (no training)."""
    torch.manual_seed(0)
    args = args or UNET_ARGS
    model = dualseg.create_model("unet", in_channels=1, num_classes=2, **args)
    description = DatasetDescription("toy", channels=1, class_names=("background", "object"),
                                     mask_values=BINARY_0_255)
    cfg = config_from_dict({"model": {"name": "unet", "args": args}, "train": {"precision": "fp32"}})
    save_checkpoint({"format": "dualseg-checkpoint-1", "model": model.state_dict(), "trainer": {"epoch": 1},
                     "config": cfg.to_dict(), "model_name": "unet", "in_channels": 1, "num_classes": 2,
                     "description": description_to_dict(description)}, folder / "checkpoints" / "best.pt")
    return folder


def make_package(folder: Path, run: Path) -> Path:
    from dualseg.deploy.export import export_model
    from dualseg.inference.loading import load_inference_model

    export_model(load_inference_model(run), "package", folder)
    return folder


def png_declaring(path: Path, width: int, height: int) -> None:
    """A small PNG whose header declares ``width x height`` (the data is a few bytes: a bomb or a corrupt header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


def float_tiff(path: Path, value: float) -> None:
    arr = np.ones((32, 32), np.float32)
    arr[3, 4] = value
    save(arr, path)


def train_argv(d: Path, data: Path, *sets: str, config: str = TINY_CONFIG, out: Path | None = None) -> list[str]:
    (d / "tiny.yaml").write_bytes(config.encode() if isinstance(config, str) else config)
    sets = (f"data.root={data}", f"output_dir={out or d / 'run'}", *sets)
    return ["train", str(d / "tiny.yaml"), "--no-progress", *[a for s in sets for a in ("--set", s)]]


# --- the cases ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    verb: str
    build: Callable[[Path], list[str]]  # makes the inputs under the folder, returns the argv
    needles: tuple[str, ...] = ()  # words the error line (check-data: its report) must hold
    code: int = 2


def _data_with(plant: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        root = make_data(d / "data")
        plant(root)
        return root
    return build


def _check(plant: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    return lambda d: ["check-data", str(_data_with(plant)(d))]


def _train(plant: Callable[[Path], None], *sets: str) -> Callable[[Path], list[str]]:
    return lambda d: train_argv(d, _data_with(plant)(d), *sets)


def _nothing(root: Path) -> None:
    pass


def _truncated(root: Path) -> None:
    data = (root / "images/1.png").read_bytes()
    (root / "images/1.png").write_bytes(data[: len(data) // 2])


def _empty(root: Path) -> None:
    (root / "images/1.png").write_bytes(b"")


def _mismatch(root: Path) -> None:
    save(np.zeros((28, 32), np.uint8), root / "masks/1.png")


def _mask_values(root: Path) -> None:
    save(np.full((32, 32), 128, np.uint8), root / "masks/1.png")


def _replace_image(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def plant(root: Path) -> None:
        (root / "images/1.png").unlink()
        make(root / "images/1.tif")
    return plant


def _huge(root: Path) -> None:
    png_declaring(root / "images/1.png", 60000, 60000)


def _dangling(root: Path) -> None:
    (root / "images/1.png").unlink()
    os.symlink(root / "nowhere.png", root / "images/1.png")


def _dangling_mask(root: Path) -> None:
    (root / "masks/1.png").unlink()
    os.symlink("../elsewhere/1.png", root / "masks/1.png")


def _stack(root: Path) -> None:
    (root / "images/1.png").unlink()
    tifffile.imwrite(root / "images/1.tif", np.zeros((5, 32, 32), np.uint8))


def _duplicate(root: Path) -> None:
    save(np.zeros((32, 32), np.uint8), root / "images/1.tif")


def _orphan_mask(root: Path) -> None:
    save(np.zeros((32, 32), np.uint8), root / "masks/9.png")


DATA_PROBLEMS = [
    ("truncated PNG", _truncated, ("truncated",)),
    ("zero-byte file", _empty, ("empty (0-byte) file",)),
    ("size mismatch", _mismatch, ("size mismatch",)),
    ("undeclared mask values", _mask_values, ("outside the declared classes",)),
    ("NaN in a float TIFF", _replace_image(lambda p: float_tiff(p, np.nan)), ("NaN or Inf",)),
    ("3e38 in a float TIFF (overflows the z-score)", _replace_image(lambda p: float_tiff(p, 3e38)),
     ("beyond what float32",)),
    ("PNG declaring 60000x60000 pixels (bomb)", _huge, ("declares 60000x60000",)),
    ("dangling image symlink", _dangling, ("broken symbolic link",)),
    ("dangling mask symlink", _dangling_mask, ("broken symbolic link",)),
    ("multi-page TIFF", _stack, ("pages/frames",)),
    ("duplicate stems", _duplicate, ("duplicate stem",)),
    ("mask without image", _orphan_mask, ("mask without image",)),
]


def _config(text: str | bytes, *sets: str) -> Callable[[Path], list[str]]:
    return lambda d: train_argv(d, make_data(d / "data"), *sets, config=text)


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6))


def _train_into_data(d: Path) -> list[str]:
    data = make_data(d / "data")
    return train_argv(d, data, out=data)


def _train_inside_images(d: Path) -> list[str]:
    data = make_data(d / "data")
    return train_argv(d, data, out=data / "images" / "run")


def _train_over_a_stranger(d: Path) -> list[str]:
    data = make_data(d / "data")
    (d / "mine").mkdir()
    (d / "mine" / "config.yaml").write_text("my own notes\n")
    return train_argv(d, data, out=d / "mine")


def _run_and_images(d: Path) -> tuple[Path, Path]:
    return make_run(d / "run"), make_data(d / "data") / "images"


def _predict(out: Callable[[Path, Path], Path], *flags: str, images: Callable[[Path], Path] | None = None,
             model: Callable[[Path], Path] | None = None) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        run, imgs = _run_and_images(d)
        src = images(d) if images else imgs
        return ["predict", str(model(d) if model else run), str(src), str(out(d, src)), "--no-progress", *flags]
    return build


def _stranger_mask(d: Path, images: Path) -> Path:
    out = d / "predictions"
    save(np.full((8, 8), 9, np.uint8), out / "0.png")
    return out


def _edited_package(field: str, value: object) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        package = make_package(d / "package", make_run(d / "src_run"))
        meta = json.loads((package / "model.json").read_text())
        meta["model"]["args"][field] = value
        (package / "model.json").write_text(json.dumps(meta))
        return package
    return build


def _not_json_package(d: Path) -> Path:
    package = make_package(d / "package", make_run(d / "src_run"))
    (package / "model.json").write_bytes(b"\xff\xfe{not json")
    return package


def _corrupt_run(d: Path) -> Path:
    run = make_run(d / "bad_run")
    (run / "checkpoints/best.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    return run


def _images_with(make: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        folder = d / "hostile_images"
        save(np.zeros((32, 32), np.uint8), folder / "ok.png")
        make(folder)
        return folder
    return build


def _evaluate(build_run: Callable[[Path], Path], *flags: str) -> Callable[[Path], list[str]]:
    return lambda d: ["evaluate", str(build_run(d)), *flags]


def _evaluated_by_someone_else(d: Path) -> Path:
    run = make_run(d / "run")
    (run / "eval" / "val").mkdir(parents=True)
    (run / "eval" / "val" / "summary.json").write_text('{"mine": true}')
    (run / "split.json").write_text(json.dumps({"train": ["0"], "val": ["1"], "test": []}))
    return run


def _export(out: Callable[[Path, Path], Path], fmt: str = "package") -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        run = make_run(d / "run")
        return ["export", str(run), "--format", fmt, "-o", str(out(d, run))]
    return build


def _stranger_package(d: Path, run: Path) -> Path:
    (d / "pkg").mkdir()
    (d / "pkg" / "model.json").write_text("{}")
    return d / "pkg"


def _a_file(d: Path, run: Path) -> Path:
    (d / "notes.txt").write_text("mine")
    return d / "notes.txt"


def _convert(src: Callable[[Path], Path], dest: Callable[[Path, Path], Path]) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        s = src(d)
        return ["convert-nnunet", str(s), "--dest", str(dest(d, s)), "--dataset-id", "7", "--name", "toy"]
    return build


CASES: list[Case] = [
    Case("dataset folder missing", "check-data", lambda d: ["check-data", str(d / "nope")], ("not found",)),
    Case("empty dataset folder", "check-data", lambda d: ["check-data", str((d / "e").mkdir() or d / "e")],
         ("no 'images/' folder",)),
    *[Case(name, "check-data", _check(plant), needles, code=1) for name, plant, needles in DATA_PROBLEMS],
    *[Case(name, "train", _train(plant), needles) for name, plant, needles in DATA_PROBLEMS],
    Case("config not UTF-8", "train", _config(b"train:\n  epochs: \xff\xfe\n"), ("not UTF-8",)),
    Case("duplicate YAML key", "train", _config(TINY_CONFIG + "seed: 1\nseed: 2\n"), ("given twice", "lines")),
    Case("YAML alias bomb", "train", _config(ALIAS_BOMB), ("alias",)),
    Case("invalid YAML", "train", _config("train: [1, 2\n"), ("not valid YAML",)),
    Case("YAML tag that runs code", "train", _config("x: !!python/object/apply:os.system ['touch pwned']\n"),
         ("could not determine a constructor",)),
    Case("train.threads -3", "train", _config(TINY_CONFIG, "train.threads=-3"), ("train.threads",)),
    Case("seed 10^24", "train", _config(TINY_CONFIG, "seed=1000000000000000000000000"), ("seed must be",)),
    Case("lr NaN", "train", _config(TINY_CONFIG, "train.optimizer.lr=.nan"), ("train.optimizer.lr",)),
    Case("eval.overlap 1", "train", _config(TINY_CONFIG, "eval.overlap=1.0"), ("eval.overlap",)),
    Case("unknown config key", "train", _config(TINY_CONFIG, "train.epohcs=3"), ("did you mean",)),
    Case("unknown split protocol", "train", _config(TINY_CONFIG, "data.split.protocol=drfl_leak"),
         ("unknown split protocol", "did you mean 'drfl_leaky'")),
    Case("split protocol fold out of range", "train",
         _config(TINY_CONFIG, "data.split.protocol=drfl_clean", "data.split.folds=4", "data.split.fold=7"),
         ("0 <= fold < folds",)),
    Case("schedule over time without a time limit", "train", _config(TINY_CONFIG, "train.schedule.horizon=time"),
         ("train.time_limit_min",)),
    Case("a 10 MB value in a message", "train", _config(TINY_CONFIG, "model.name=" + "x" * 10_000_000),
         ("unknown model",)),
    Case("output_dir is the data folder", "train", _train_into_data, ("contains the input",)),
    Case("output_dir inside images/", "train", _train_inside_images, ("lies inside the input folder",)),
    Case("output_dir holds a stranger's config.yaml", "train", _train_over_a_stranger, ("not written by dualseg",)),
    Case("predict RUN DIR DIR (output is the input)", "predict", _predict(lambda d, s: s), ("is the input",)),
    Case("predict into a folder inside the input", "predict", _predict(lambda d, s: s / "pred"), ("lies inside",)),
    Case("predict into the input's parent", "predict", _predict(lambda d, s: s.parent), ("contains the input",)),
    Case("predict over a stranger's file", "predict", _predict(_stranger_mask), ("not written by dualseg",)),
    Case("predict into the run (holds the checkpoint)", "predict", _predict(lambda d, s: d / "run"),
         ("contains the input",)),
    Case("predict: input missing", "predict", _predict(lambda d, s: d / "out", images=lambda d: d / "nope"),
         ("input not found",)),
    Case("predict: corrupt checkpoint", "predict", _predict(lambda d, s: d / "out", model=_corrupt_run),
         ("cannot load checkpoint",)),
    Case("predict: package width 999999", "predict",
         _predict(lambda d, s: d / "out", model=_edited_package("channels", [999999, 999999, 999999])),
         ("does not fit model",)),
    Case("predict: package option of the wrong type", "predict",
         _predict(lambda d, s: d / "out", model=_edited_package("channels", "wide")), ()),
    Case("predict: model.json not JSON", "predict", _predict(lambda d, s: d / "out", model=_not_json_package),
         ("malformed",)),
    Case("predict: image declaring 60000x60000", "predict",
         _predict(lambda d, s: d / "out", images=_images_with(lambda f: png_declaring(f / "big.png", 60000, 60000))),
         ("declares 60000x60000",)),
    Case("predict: 3e38 float TIFF", "predict",
         _predict(lambda d, s: d / "out", images=_images_with(lambda f: float_tiff(f / "hot.tif", 3e38))),
         ("beyond what float32",)),
    Case("predict: duplicate stems", "predict",
         _predict(lambda d, s: d / "out", images=_images_with(lambda f: save(np.zeros((8, 8), np.uint8),
                                                                               f / "ok.tif"))),
         ("duplicate stem",)),
    Case("predict: --overlap 1.5", "predict", _predict(lambda d, s: d / "out", "--overlap", "1.5"), ("--overlap",)),
    Case("evaluate: run missing", "evaluate", _evaluate(lambda d: d / "nope"), ("no run directory",)),
    Case("evaluate: run without checkpoints", "evaluate", _evaluate(lambda d: (d / "r").mkdir() or d / "r"),
         ("holds no checkpoints",)),
    Case("evaluate: corrupt checkpoint", "evaluate", _evaluate(_corrupt_run), ("cannot load checkpoint",)),
    Case("evaluate over a stranger's summary.json", "evaluate", _evaluate(_evaluated_by_someone_else),
         ("not written by dualseg",)),
    Case("export over the checkpoint itself", "export",
         _export(lambda d, run: run / "checkpoints" / "best.pt", "torchscript"), ("is the input",)),
    Case("export into a stranger's package folder", "export", _export(_stranger_package), ("not written by",)),
    Case("export a package onto a file", "export", _export(_a_file), ("is a file",)),
    Case("report: run missing", "report", lambda d: ["report", str(d / "nope"), "-o", str(d / "rep")], ()),
    Case("report: run never evaluated", "report",
         lambda d: ["report", str(make_run(d / "run")), "-o", str(d / "rep")], ()),
    Case("make-sr-targets: teacher missing", "make-sr-targets",
         lambda d: ["make-sr-targets", str(d / "t.pt"), str(make_data(d / "data")), str(d / "sr"), "--no-progress"],
         ()),
    Case("make-sr-targets: teacher is a segmentation checkpoint", "make-sr-targets",
         lambda d: ["make-sr-targets", str(make_run(d / "run") / "checkpoints/best.pt"), str(make_data(d / "data")),
                    str(d / "sr"), "--no-progress"], ()),
    Case("convert-nnunet: source with problems (no dest left behind)", "convert-nnunet",
         _convert(_data_with(_orphan_mask), lambda d, s: d / "nnraw"), ("has problems",)),
    Case("convert-nnunet: dest inside the source", "convert-nnunet",
         _convert(lambda d: make_data(d / "data"), lambda d, s: s / "nn"), ("lies inside",)),
    Case("convert-nnunet: source missing", "convert-nnunet", _convert(lambda d: d / "nope", lambda d, s: d / "nn"),
         ("not found",)),
    Case("fetch-data: unknown dataset", "fetch-data", lambda d: ["fetch-data", "drvie", "--dest", str(d / "x")],
         ("drvie",)),
    Case("fetch-data: dest not empty", "fetch-data",
         lambda d: ["fetch-data", "drive", "--dest", str(make_data(d / "data"))], ("not empty",)),
    Case("benchmark --input-size 60000x60000", "benchmark",
         lambda d: ["benchmark", "unet", "--input-size", "60000x60000"], ("more than the limit",)),
    Case("benchmark --model-args not JSON", "benchmark", lambda d: ["benchmark", "unet", "--model-args", "{x"], ()),
    Case("benchmark --batch 0", "benchmark", lambda d: ["benchmark", "unet", "--batch", "0"], ("--batch",)),
    Case("benchmark: unknown model", "benchmark", lambda d: ["benchmark", "unett"], ("did you mean",)),
    Case("cv: config missing", "cv", lambda d: ["cv", str(d / "nope.yaml"), "--folds", "2"], ("not found",)),
    Case("cv: duplicate YAML key", "cv", lambda d: ["cv", str(_config(TINY_CONFIG + "seed: 1\nseed: 2\n")(d)[1]),
                                                    "--folds", "2"], ("given twice",)),
    Case("compare: runs missing", "compare", lambda d: ["compare", str(d / "a"), str(d / "b")], ()),
    Case("train-sr: data missing", "train-sr",
         lambda d: ["train-sr", str(d / "nope"), "--output-dir", str(d / "t"), "--no-progress"], ("not found",)),
]


# --- running ------------------------------------------------------------------------------------------------------
def tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (files: their SHA-256; links: their target; folders: 'dir')."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    case: Case
    code: int
    stdout: str
    stderr: str
    changed: list[str]

    def problems(self) -> list[str]:
        found = []
        if self.code != self.case.code:
            found.append(f"exit code {self.code}, expected {self.case.code}")
        if "Traceback" in self.stderr:
            found.append("traceback")
        lines = [line for line in self.stderr.strip().splitlines() if line]
        if self.case.code == 2 and (len(lines) != 1 or not lines[0].startswith("error: ")):
            found.append(f"stderr is not one error line: {self.stderr[-300:]!r}")
        if any(len(line) > MAX_LINE for line in lines):
            found.append(f"an error line of {max(map(len, lines))} characters (> {MAX_LINE})")
        text = self.stderr if self.case.code == 2 else self.stdout
        found += [f"missing {n!r} in {text[-300:]!r}" for n in self.case.needles if n not in text]
        if self.changed:
            found.append(f"files changed, added or removed: {self.changed[:5]}")
        return found


def run_case(case: Case, folder: Path) -> Outcome:
    from dualseg.cli import main

    folder.mkdir(parents=True)
    argv = case.build(folder)
    before = tree(folder)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)  # anything written to a relative default path lands in the case's folder
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(cwd)
    after = tree(folder)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return Outcome(case, code, out.getvalue(), err.getvalue(), changed)


def main(argv: list[str] | None = None) -> int:
    """Run every case under a temporary folder; print the counts (cases, clean, by verb) as a Markdown table."""
    import tempfile
    import time

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = [run_case(case, Path(tmp) / f"case{i:03d}") for i, case in enumerate(CASES)]
    seconds = time.perf_counter() - start
    total, clean = Counter(), Counter()
    for o in outcomes:
        total[o.case.verb] += 1
        clean[o.case.verb] += not o.problems()
        for p in o.problems():
            print(f"NOT CLEAN {o.case.verb}: {o.case.name}: {p}", file=sys.stderr)
    print("| verb | cases | clean |\n|---|---|---|")
    for verb in sorted(total):
        print(f"| `{verb}` | {total[verb]} | {clean[verb]} |")
    print(f"| all | {sum(total.values())} | {sum(clean.values())} |")
    print(f"\n{len(outcomes)} cases in {seconds:.1f} s")
    return 0 if sum(clean.values()) == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
