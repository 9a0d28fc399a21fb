"""Train DRFL's SR teacher on a dataset's own images, then cache its outputs as the SR stream's targets.

``train_sr_teacher``: inputs are the images downsampled by ``scale`` (area), targets the originals (paper Sec.
3.1.2), L1 loss, Adam; every epoch the teacher's PSNR on the validation images is measured next to bicubic
upsampling. ``make_sr_targets``: the teacher's ``scale``x output of every original image, saved as
``<stem>.npy`` (H', W', C) float32 in the normalised space DRFL's input uses, plus ``targets.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from dualseg.checkpoint import load_checkpoint, save_checkpoint
from dualseg.config import Config, apply_overrides, config_from_dict
from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.dataset import normalize_image
from dualseg.data.io import read_image, to_channels, to_float
from dualseg.data.sr_pairs import TARGETS_META
from dualseg.errors import DualsegError
from dualseg.metrics.image_quality import unit_affine
from dualseg.models.sr_teacher import SRTeacher
from dualseg.progress import progress_bar
from dualseg.runtime import resolve_device, seed_everything
from dualseg.safety.atomic import atomic_write, atomic_write_text
from dualseg.safety.outputs import writing_into


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, data_range]."""
    mse = float(torch.mean((prediction.float() - target.float()) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def _unit_and_stats(path: Path, channels: int, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """The [0, 1] image and its normalised version (same affine map as the dataset applies)."""
    unit = to_channels(to_float(read_image(path), path), channels, path)
    return unit, normalize_image(unit, normalize)


@torch.no_grad()
def evaluate_psnr(model: SRTeacher, paths: list[Path], normalize: str, device: torch.device) -> dict[str, float]:
    """Mean PSNR (dB, [0, 1] intensities) of teacher and of bicubic upsampling against the original images."""
    model.eval()
    scores = {"teacher_psnr": [], "bicubic_psnr": []}
    s = model.scale
    for path in paths:
        unit, norm = _unit_and_stats(path, model.in_channels, normalize)
        h, w = (unit.shape[0] // s) * s, (unit.shape[1] // s) * s
        hr = torch.from_numpy(unit[:h, :w].transpose(2, 0, 1))[None]
        hr_norm = torch.from_numpy(norm[:h, :w].transpose(2, 0, 1))[None].to(device)
        lr_norm = F.avg_pool2d(hr_norm, s)
        sr_norm = model(lr_norm).cpu()
        # back to [0, 1]: the normalisation is affine per image and channel, recover it from the two versions
        scale_, shift = unit_affine(norm[:h, :w], unit[:h, :w])  # (C, 1, 1): broadcasts over the batch
        sr = (sr_norm * scale_ + shift).clamp(0, 1)
        lr_unit = F.avg_pool2d(hr, s)
        bicubic = F.interpolate(lr_unit, scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 1)
        scores["teacher_psnr"].append(psnr(sr, hr))
        scores["bicubic_psnr"].append(psnr(bicubic, hr))
    model.train()
    return {k: float(np.mean(v)) for k, v in scores.items()}


def teacher_config(root: str, output_dir: str, overrides: list[str] | None = None) -> Config:
    """Defaults for teacher training (SR pairs by downsampling, flips/rot90, 128-pixel HR patches) + ``--set``."""
    base = {
        "name": "sr_teacher",
        "output_dir": output_dir,
        "data": {"root": root, "patch_size": [128, 128], "sr": {"mode": "downsample", "scale": 2},
                 "augment": {"affine": 0.0, "intensity": 0.0, "gamma": 0.0, "noise": 0.0}},
        "train": {"epochs": 20, "batch_size": 8, "iters_per_epoch": 25,
                  "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}},
    }
    return config_from_dict(apply_overrides(base, overrides or []))


def train_sr_teacher(cfg: Config, features: int = 32, blocks: int = 8, progress: bool = True) -> dict:
    """Train the teacher; write ``OUTPUT_DIR/teacher.pt``, ``metrics.csv`` and ``summary.json``; return the summary."""
    out = Path(cfg.output_dir)
    seed_everything(cfg.seed, cfg.train.deterministic)
    device = resolve_device(cfg.train.device, "train.device", "--set train.device=cpu (or auto)")
    bundle = prepare_data(cfg)
    train_set = make_dataset(cfg, bundle, "train", train=True)
    val_paths = [bundle.samples[s].image for s in (bundle.split["val"] or bundle.split["train"][:4])]
    model = SRTeacher(bundle.description.channels, cfg.data.sr.scale, features, blocks).to(device)
    o = cfg.train.optimizer
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    total = cfg.train.epochs * (cfg.train.iters_per_epoch or len(train_set) // cfg.train.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    rows, t0 = [], time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for epoch in range(cfg.train.epochs):
        train_set.set_epoch(epoch)
        iters = cfg.train.iters_per_epoch or max(1, len(train_set) // cfg.train.batch_size)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        sampler = RandomSampler(train_set, num_samples=iters * cfg.train.batch_size, generator=gen)
        loader = DataLoader(train_set, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True)
        losses = []
        for batch in progress_bar(loader, total=iters, desc=f"sr teacher {epoch + 1}/{cfg.train.epochs}",
                                  enabled=progress):
            loss = F.l1_loss(model(batch["image"].to(device)), batch["hr_image"].to(device))
            if not torch.isfinite(loss):
                raise DualsegError(f"SR teacher loss became {float(loss)} at epoch {epoch + 1}; lower the lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        scores = evaluate_psnr(model, val_paths, cfg.data.normalize, device)
        rows.append({"epoch": epoch + 1, "l1": round(float(np.mean(losses)), 6),
                     **{k: round(v, 4) for k, v in scores.items()}, "time_s": round(time.perf_counter() - t0, 1)})
        tqdm.write(" ".join(f"{k}={v}" for k, v in rows[-1].items()))
    summary = {"scale": cfg.data.sr.scale, "normalize": cfg.data.normalize, "dataset": bundle.description.name,
               "val_images": len(val_paths), **rows[-1], "model": model.config()}
    save_checkpoint({"model": model.state_dict(), "config": cfg.to_dict(), "teacher": model.config(),
                     "summary": summary}, out / "teacher.pt")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def load_teacher(path: str | Path, device: torch.device) -> tuple[SRTeacher, dict]:
    state = load_checkpoint(path)
    if "teacher" not in state:
        raise DualsegError(f"{path} is not an SR teacher checkpoint (made by 'dualseg train-sr')")
    model = SRTeacher(**state["teacher"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


@torch.no_grad()
def make_sr_targets(teacher_path: str | Path, data_root: str | Path, output_dir: str | Path,
                    image_dir: str = "images", progress: bool = True, overwrite: bool = False) -> Path:
    """Run the teacher on every image of ``data_root/image_dir``; write ``<stem>.npy`` and ``targets.json``
    (``output_dir`` follows :mod:`dualseg.safety.outputs`)."""
    from dualseg.inference.inputs import list_inputs

    device = resolve_device("auto")
    model, state = load_teacher(teacher_path, device)
    normalize = state["summary"]["normalize"]
    out = Path(output_dir)
    paths = list_inputs(Path(data_root) / image_dir)
    with writing_into(out, [Path(data_root) / image_dir, teacher_path], overwrite=overwrite):
        _write_targets(model, state, paths, out, teacher_path, normalize, device, progress)
    return out


def _write_targets(model: SRTeacher, state: dict, paths: list[Path], out: Path, teacher_path: str | Path,
                   normalize: str, device: torch.device, progress: bool) -> None:
    for path in progress_bar(paths, desc="sr targets", enabled=progress):
        _, norm = _unit_and_stats(path, model.in_channels, normalize)
        x = torch.from_numpy(norm.transpose(2, 0, 1).copy())[None].to(device)
        target = model(x)[0].cpu().numpy().transpose(1, 2, 0).astype(np.float32)
        atomic_write(out / f"{path.stem}.npy", lambda f, t=target: np.save(f, t))
    meta = {"scale": model.scale, "normalize": normalize, "teacher": str(teacher_path), "images": len(paths),
            "teacher_val_psnr": state["summary"].get("teacher_psnr"),
            "bicubic_val_psnr": state["summary"].get("bicubic_psnr")}
    atomic_write_text(out / TARGETS_META, json.dumps(meta, indent=1))
