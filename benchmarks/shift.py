"""How much Dice a trained run keeps under controlled acquisition shifts, with and without ``--scale auto``.

    python benchmarks/shift.py runs/drive_unet                 # its test split
    python benchmarks/shift.py runs/drive_unet --split val --limit 4

Each image of the split is shifted in memory (no copies written): rescaled x0.6 and x1.7 (image bilinear,
antialiased when shrinking; label and FOV masks nearest), gamma 0.6 and 1.6, a colour cast (R x1.1, G x0.8,
B x0.6, then x0.7 overall: darker and redder; gray images only x0.7), Gaussian blur sigma 1.5, JPEG quality 30, and
rescale x1.7 + colour cast. Every shifted image is predicted by ``dualseg predict``'s own path
(``dualseg.deploy.predict.predict_arrays``) with ``--scale none`` and ``--scale auto``, and scored against its
shifted label mask: Dice per image (mean over the foreground classes, inside the FOV where the dataset has FOV
masks) and its mean. Writes ``benchmarks/results/<machine>/shift/<run name>.json`` and ``.md``: Dice per shift and
mode, and the fraction kept of the unshifted Dice (shift none, scale none).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from dualseg.benchmark import git_commit, machine, machine_tag
from dualseg.data.build import prepare_data
from dualseg.data.io import read_image, read_mask
from dualseg.deploy.predict import PredictOptions, predict_arrays
from dualseg.errors import DualsegError
from dualseg.inference.loading import LoadedModel, load_inference_model
from dualseg.inference.scale import resample, scaled_size
from dualseg.metrics import confusion_counts, metrics_from_counts, num_labels_for
from dualseg.runtime import resolve_device

ROOT = Path(__file__).resolve().parent
CAST = (1.1 * 0.7, 0.8 * 0.7, 0.6 * 0.7)  # per-channel gains R, G, B: darker and redder
MODES = ("none", "auto")


@dataclass
class Case:
    """One image of the split as float [0, 1] (H, W, C), its class indices and its FOV (None: everywhere)."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    fov: np.ndarray | None


# --- the shifts (each: Case -> Case) ------------------------------------------------------------------------------
def rescale(case: Case, factor: float) -> Case:
    """Image bilinear (antialiased when shrinking), label and FOV masks nearest, all to the same scaled size."""
    size = scaled_size(case.image.shape[:2], factor)
    x = torch.from_numpy(np.ascontiguousarray(case.image.transpose(2, 0, 1), dtype=np.float32))[None]
    image = resample(x, size)[0].numpy().transpose(1, 2, 0).clip(0, 1)

    def nearest(mask: np.ndarray) -> np.ndarray:
        return F.interpolate(torch.from_numpy(mask)[None, None].float(), size=size, mode="nearest-exact")[0, 0] \
            .numpy().astype(mask.dtype)

    return Case(case.name, image, nearest(case.labels), None if case.fov is None else nearest(case.fov))


def gamma(case: Case, value: float) -> Case:
    return Case(case.name, case.image**value, case.labels, case.fov)


def colour_cast(case: Case, gains: tuple[float, float, float] = CAST) -> Case:
    """Per-channel gains on RGB images (clipped to [0, 1]); gray images take the overall factor 0.7."""
    scale = np.array(gains, np.float32) if case.image.shape[2] == 3 else np.float32(0.7)
    return Case(case.name, np.clip(case.image * scale, 0, 1), case.labels, case.fov)


def blur(case: Case, sigma: float) -> Case:
    return Case(case.name, ndimage.gaussian_filter(case.image, sigma=(sigma, sigma, 0)), case.labels, case.fov)


def jpeg(case: Case, quality: int) -> Case:
    """Encoded and decoded as 8-bit JPEG at ``quality`` in memory."""
    pixels = to_stored(case.image)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    decoded = np.array(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255
    return Case(case.name, decoded.reshape(case.image.shape), case.labels, case.fov)


SHIFTS: dict[str, Callable[[Case], Case]] = {
    "none": lambda c: c,
    "rescale x0.6": lambda c: rescale(c, 0.6),
    "rescale x1.7": lambda c: rescale(c, 1.7),
    "gamma 0.6": lambda c: gamma(c, 0.6),
    "gamma 1.6": lambda c: gamma(c, 1.6),
    "colour cast": colour_cast,
    "blur sigma 1.5": lambda c: blur(c, 1.5),
    "jpeg q30": lambda c: jpeg(c, 30),
    "rescale x1.7 + colour cast": lambda c: colour_cast(rescale(c, 1.7)),
}


def to_stored(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] (H, W, C) -> 8-bit pixels as a file would hold them (gray: 2D)."""
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[2] == 1 else pixels


# --- the evaluation -----------------------------------------------------------------------------------------------
def load_cases(loaded: LoadedModel, run: Path, split: str, limit: int | None) -> list[Case]:
    cfg = loaded.config
    if cfg is None:
        raise DualsegError(f"{run} has no training config; give a run directory or its checkpoint")
    bundle = prepare_data(cfg, run / "split.json")
    samples = bundle.subset(split)[:limit]
    if not samples:
        raise DualsegError(f"the {split} split of {run} is empty; choose another with --split")
    cases = []
    for s in samples:
        stored = read_image(s.image)
        image = stored.astype(np.float32) / (65535 if stored.dtype.itemsize > 1 else 255)
        image = image[..., None] if image.ndim == 2 else image[..., :3]  # RGBA: alpha dropped, as predict does
        labels = bundle.description.encode_mask(read_mask(s.mask), s.mask).astype(np.uint8)
        fov = None if s.fov is None else (read_mask(s.fov) > 0).astype(np.uint8)
        cases.append(Case(s.image.name, image, labels, fov))
    return cases


def training_summary(loaded: LoadedModel, run: Path) -> dict[str, Any]:
    """What the run's ``metrics.csv`` says of its training: config name, epochs, best validation monitor, minutes."""
    cfg = loaded.config
    summary: dict[str, Any] = {"name": cfg.name, "monitor": cfg.train.monitor}
    log = run / "metrics.csv"
    if not log.is_file():
        return summary
    rows = list(csv.DictReader(log.read_text().splitlines()))
    scores = [float(r[f"val_{cfg.train.monitor}"]) for r in rows if r.get(f"val_{cfg.train.monitor}")]
    summary.update(epochs=len(rows), best_val=round(max(scores), 4) if scores else None,
                   train_minutes=round(float(rows[-1]["time_s"]) / 60, 1) if rows and rows[-1].get("time_s") else None)
    return summary


def dice(predicted: np.ndarray, case: Case, foreground: list[int], num_labels: int) -> float:
    """Mean Dice over the foreground classes (inside the FOV when there is one)."""
    valid = None if case.fov is None else torch.from_numpy(case.fov)
    counts = confusion_counts(torch.from_numpy(predicted.astype(np.int64)), torch.from_numpy(case.labels.astype(
        np.int64)), num_labels, valid)
    return float(np.nanmean(metrics_from_counts(counts)["dice"][foreground]))


def evaluate(loaded: LoadedModel, cases: list[Case], device: torch.device) -> list[dict[str, Any]]:
    """One row per shift and mode: Dice per image and mean, the factors used (or why ``auto`` refused)."""
    description = loaded.description
    foreground = description.foreground
    num_labels = num_labels_for(loaded.model.num_classes)
    rows = []
    for shift_name, shift in SHIFTS.items():
        shifted = [shift(c) for c in cases]
        by_name = {c.name: c for c in shifted}
        for mode in MODES:
            row: dict[str, Any] = {"shift": shift_name, "scale": mode}
            try:
                predicted = list(predict_arrays(loaded, [(c.name, to_stored(c.image)) for c in shifted], device,
                                                PredictOptions(overlays=False, scale=mode)))
            except DualsegError as e:
                rows.append({**row, "refused": str(e), "dice": None, "per_image": {}})
                continue
            per_image = {name: dice(labels, by_name[name], foreground, num_labels) for name, labels, _ in predicted}
            row.update(dice=float(np.nanmean(list(per_image.values()))), per_image=per_image,
                       factors={name: None if choice is None else choice.factor for name, _, choice in predicted})
            rows.append(row)
            print(f"{shift_name:28s} scale {mode:4s}  Dice {row['dice']:.4f}", flush=True)
    reference = next(r["dice"] for r in rows if r["shift"] == "none" and r["scale"] == "none")
    for r in rows:
        r["kept"] = None if r["dice"] is None or not reference else r["dice"] / reference
    return rows


def training_line(training: dict[str, Any]) -> str:
    if "epochs" not in training:
        return f"Training: config `{training.get('name', '?')}` (no metrics.csv in the run)."
    epochs = f"{training['epochs']} epoch{'s' if training['epochs'] != 1 else ''}"
    return (f"Training: config `{training['name']}`, {epochs} in {training['train_minutes']} min, "
            f"best validation {training['monitor']} {training['best_val']}.")


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# Acquisition shifts: `{record['run']}` on its {record['split']} split ({record['images']} images)",
        "",
        f"Machine: {record['machine_tag']}; commit {record['commit']}; model `{record['model']}`, scale proxy "
        f"`{record['scale_proxy']}`, training scale {record['train_scale']}. Dice = mean over images of the "
        f"foreground-mean Dice{' inside the FOV' if record['fov'] else ''}; kept = Dice / unshifted Dice "
        "(shift none, --scale none). Made by `python benchmarks/shift.py`.",
        "",
        training_line(record.get("training") or {}),
        "",
        "| shift | Dice, --scale none | kept | Dice, --scale auto | kept | auto factors (median) |",
        "|---|---|---|---|---|---|",
    ]
    by_key = {(r["shift"], r["scale"]): r for r in record["results"]}

    def cell(r: dict[str, Any]) -> str:
        return "refused" if r["dice"] is None else f"{r['dice']:.4f} | {r['kept']:.3f}"

    for shift in SHIFTS:
        none, auto = by_key[(shift, "none")], by_key[(shift, "auto")]
        factors = [f for f in (auto.get("factors") or {}).values() if f is not None]
        median = f"{np.median(factors):.3f}" if factors else "-"
        lines.append(f"| {shift} | {cell(none)} | {cell(auto)} | {median} |".replace("refused |", "refused | - |"))
    return "\n".join(lines) + "\n"


def run_benchmark(run: Path, split: str, checkpoint: str, device: str, limit: int | None,
                  results_dir: Path) -> Path:
    dev = resolve_device(device)
    loaded = load_inference_model(run, checkpoint, dev)
    cases = load_cases(loaded, run, split, limit)
    info = machine()
    spec = loaded.spec
    record = {
        "run": run.name, "split": split, "images": len(cases), "model": loaded.info.get("model_name"),
        "checkpoint": loaded.source, "scale_proxy": spec.scale_proxy, "train_scale": spec.train_scale,
        "train_scale_range": spec.train_scale_range, "fov": any(c.fov is not None for c in cases),
        "machine": info, "machine_tag": machine_tag(info), "commit": git_commit(ROOT),
        "training": training_summary(loaded, run), "results": evaluate(loaded, cases, dev),
    }
    out = results_dir / machine_tag(info) / "shift" / f"{run.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, help="only the first N images of the split")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    out = run_benchmark(args.run, args.split, args.checkpoint, args.device, args.limit, args.results_dir)
    print(f"wrote {out} and {out.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
