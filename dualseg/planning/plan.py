"""``dualseg plan``: from a dataset fingerprint and a time budget to a training configuration, each value with the
reason it was chosen.

The rules, in the order they are applied (docs/planning.md gives the evidence behind each):
1. **Patch** (``data.patch_size``): the median image, capped at 256 px a side on a CPU and 512 on a GPU (context
   against steps: the budget buys more steps of smaller patches), never smaller than four times the median object's
   side, a multiple of the model's size divisor. Whole images when the median image fits the cap.
2. **Network** (models with ``channels``: the U-Net family): one down-sampling per halving until the bottleneck is
   16 px (2 to 5), widths doubling from 16 on a CPU (32 on a GPU), capped at 16x the first. Models with a fixed
   ``img_size`` (DANIE) get the patch as their size; models with an SR stream (``upscale``: DS2F) get
   downsampled LR inputs and their SR loss terms.
3. **Batch**: 4 patches per step when the activation memory measured by :func:`~dualseg.planning.probe.probe`
   fits a quarter of this machine's free memory (2 at least; the patch shrinks when even 2 do not fit).
4. **Loss**: cross entropy + Dice; foreground classes below 1 % of the pixels get a cross-entropy weight of
   ``sqrt(background fraction / class fraction)``, at most 10.
5. **Augmentation**: flips and 90-degree rotations (2D images have no preferred orientation unless laterality
   matters: the user's call, said in the comment), mild affine, intensity/gamma (stronger for RGB photographs).
6. **Optimizer and schedule**: AdamW 1e-3, poly decay with one warm-up epoch over the time budget
   (``train.schedule.horizon: time``), gradient clipping 12.
7. **Steps** (``--budget-min``): real training steps and one validation image are timed on this machine, and the
   validation images counted in the split the config makes (its protocol, copies and fold included); epochs x
   iterations fill the budget with validation at most a tenth of it, and ``train.time_limit_min`` (the budget
   less one step and one validation pass: the trainer checks it after every step, then validates the cut epoch)
   ends training within the budget even on a slower day.
8. **Scale** (``data.scale_proxy``): ``spacing`` when every image file states its pixel spacing (TIFF resolution,
   PNG pHYs), so that ``predict`` brings new images to it; otherwise the description's proxy (``auto``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dualseg.config import Config, apply_overrides, config_from_dict
from dualseg.data.build import prepare_data
from dualseg.data.descriptions import list_descriptions
from dualseg.errors import DualsegError
from dualseg.models import create_model
from dualseg.planning.probe import Probe, probe
from dualseg.runtime import resolve_device

RARE = 0.01  # a foreground class below this pixel fraction gets a cross-entropy weight
MAX_WEIGHT = 10.0
EVAL_SHARE = 0.1  # validation at most this share of the budget
BUDGET_USE = 0.95  # training steps fill this share; the rest covers the final checkpoint and timing noise
BATCH = 4


@dataclass
class Plan:
    """A config as nested plain values, the reason of every planned key (dotted), and what was measured."""

    config: dict[str, Any]
    reasons: dict[str, str] = field(default_factory=dict)
    probe: Probe | None = None
    notes: list[str] = field(default_factory=list)

    def set(self, key: str, value: Any, reason: str) -> None:
        node = self.config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        self.reasons[key] = reason

    def validated(self) -> Config:
        return config_from_dict(self.config)


def _accepts(model: str, option: str, value: Any) -> bool:
    """Whether ``model`` takes ``option`` (built on the meta device: nothing is allocated)."""
    try:
        with torch.device("meta"):
            create_model(model, **{option: value})
    except DualsegError:
        return False
    return True


def _size_divisor(model: str, args: dict[str, Any], in_channels: int, num_classes: int) -> int:
    with torch.device("meta"):
        built = create_model(model, in_channels=in_channels, num_classes=num_classes, **args)
    return int(getattr(built, "size_divisor", 1))


def _free_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**20
    try:  # MemAvailable counts reclaimable page cache, which the free page count does not
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20


def _round_down(side: int, divisor: int) -> int:
    return max(divisor, side // divisor * divisor)


def _patch(fp: dict, cap: int) -> tuple[list[int], str]:
    height, width = fp["image_sizes"]["height"]["median"], fp["image_sizes"]["width"]["median"]
    areas = [k["area"]["median"] for k in fp["objects"]["per_class"] if k["area"]]
    object_side = math.sqrt(max(areas)) if areas else 0.0
    need = math.ceil(4 * object_side)
    side_cap = max(cap, min(need, max(height, width)))
    patch = [min(height, side_cap), min(width, side_cap)]
    why = f"median image {width}x{height}"
    if areas:
        why += f"; median object {object_side:.0f} px across"
    if patch != [height, width]:
        why += f"; capped at {side_cap} px (more steps in the budget)"
    return patch, why


def _network(plan: Plan, model: str, patch: list[int], gpu: bool) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if _accepts(model, "channels", [8, 16, 32]):
        depth = min(5, max(2, int(math.log2(min(patch) / 16))))
        base = 32 if gpu else 16
        widths = [min(base * 2**i, 16 * base) for i in range(depth + 1)]
        args["channels"] = widths
        plan.reasons["model.args.channels"] = (f"{depth} down-samplings: {min(patch)} px patch -> "
                                               f"{min(patch) // 2**depth} px bottleneck; from {base} on a "
                                               f"{'GPU' if gpu else 'CPU'}")
    if _accepts(model, "img_size", 64):
        args["img_size"] = min(patch)
        plan.reasons["model.args.img_size"] = "the model's fixed input size = the patch"
    plan.set("model.name", model, "--model")
    plan.set("model.args", args, "planned options (the model's defaults for the rest)")
    return args


def _sr_stream(plan: Plan, factor: int) -> None:
    """DS2F-style models (an ``upscale`` option): LR inputs downsampled from the images, masks at full size."""
    plan.set("data.sr", {"mode": "downsample", "scale": factor, "mask_at": "hr", "interpolation": "bicubic"},
             f"SR stream: LR input = the image downsampled {factor}x (bicubic), masks and SR target at full size")
    plan.config["model"]["args"]["upscale"] = factor
    plan.reasons["model.args.upscale"] = "the SR stream's factor = the LR input's"


def _loss(plan: Plan, fp: dict, sr: bool) -> None:
    classes = fp["classes"]
    background = fp["description"]["background"]  # None: every class counts (ISBI 2012)
    fractions = [k["fraction"] for k in classes]
    reference = fractions[background] if background is not None else max(fractions)
    terms: list[dict[str, Any]] = [{"name": "ce", "weight": 1.0}]
    reason = "cross entropy + Dice" + (" over every class" if background is None else " over the foreground")
    rare = [k for k in classes if k["index"] != background and 0 < k["fraction"] < RARE]
    if rare:
        weights = [min(MAX_WEIGHT, math.sqrt(reference / f)) if k["index"] != background and 0 < f < RARE else 1.0
                   for k, f in zip(classes, fractions)]
        terms[0]["kwargs"] = {"class_weights": [round(w, 2) for w in weights]}
        reason += "; rare " + ", ".join(f"{k['name']} {k['fraction']:.2%}" for k in rare) + " weighted"
    terms.append({"name": "dice", "weight": 1.0, "kwargs": {"include_background": background is None}})
    if sr:
        terms += [{"name": "mse", "output": "sr", "target": "hr_image", "valid": None, "weight": 1.0},
                  {"name": "ssim", "output": "proxy_sr", "target": "hr_image", "valid": None, "weight": 1.0},
                  {"name": "rmi", "output": "proxy_seg", "weight": 1.0, "kwargs": {"activation": "sigmoid"}}]
        reason += "; the SR stream's MSE and the proxy SSIM/RMI terms (configs/drive/ds2f_unet*.yaml)"
    plan.set("loss", terms, reason)


def _augment(plan: Plan, fp: dict) -> None:
    rgb = fp["channels"] == 3
    plan.set("data.augment", {"flip": 0.5, "rot90": 0.5, "affine": 0.2, "rotate_deg": 15.0, "elastic": 0.0,
                              "intensity": 0.3 if rgb else 0.15, "gamma": 0.3 if rgb else 0.15,
                              "noise": 0.0 if rgb else 0.1},
             "flips and 90-degree turns (set flip: 0 where laterality matters: your call); mild affine; "
             + ("colour/contrast for RGB photographs" if rgb else "intensity, gamma, noise for gray images"))


def _normalize(plan: Plan, fp: dict) -> None:
    stats = fp["intensity"]["all"] or []
    wide = any(s["percentiles"]["99.5"] - s["percentiles"]["0.5"] > 100 for s in stats)
    reason = "per-image z-score"
    if stats:
        p = stats[0]["percentiles"]
        reason += f" (channel 0 from {p['0.5']:.3g} to {p['99.5']:.3g}, p0.5-p99.5)"
    if wide:
        plan.notes.append("intensities span a CT-like range: z-score per image is used; clip outliers beforehand "
                          "if the scanner writes padding values")
    plan.set("data.normalize", "zscore", reason)


def _batch(measure: Callable[..., Probe], plan: Plan, fp: dict, patch: list[int], divisor: int, lr_factor: int,
           device: str) -> tuple[list[int], int, Probe, float]:
    """The batch (at most BATCH, at least 2 where the patch can shrink) whose activations fit a quarter of the free
    memory, and the probe of the network at that batch and patch."""
    free = _free_memory_mib(resolve_device(device)) / 4
    model, args = plan.config["model"]["name"], plan.config["model"]["args"]
    in_channels, num_classes = fp["channels"], len(fp["classes"])
    eval_size = [fp["image_sizes"]["height"]["median"] // lr_factor, fp["image_sizes"]["width"]["median"] // lr_factor]

    def fitting(measured: Probe) -> int:
        return int(max(1, min(BATCH, free // max(measured.activation_mib, 1e-6))))

    def measured_at(batch: int) -> Probe:
        return measure(model, args, in_channels, num_classes, [s // lr_factor for s in patch], batch, eval_size,
                       device)

    measured, batch = measured_at(BATCH), BATCH
    while fitting(measured) < 2 and min(patch) >= 2 * divisor:
        patch = [_round_down(s // 2, divisor) for s in patch]
        measured, batch = measured_at(2), 2
    if fitting(measured) != batch:  # time the step at the batch that will train
        batch = fitting(measured)
        measured = measured_at(batch)
    return patch, batch, measured, free


def validation_images(cfg: Config) -> int:
    """The images one validation pass of ``cfg`` predicts: its split's val list (a split protocol's copies count
    one by one; ISBI 2012's clean protocol validates 30 copies of 3 slices)."""
    return len(prepare_data(cfg).split.get("val", []))


def _steps(plan: Plan, measured: Probe, n_val: int, budget_min: float) -> None:
    eval_s = n_val * measured.eval_image_s
    budget_s = budget_min * 60
    steps = int(budget_s * BUDGET_USE / measured.step_s)
    # iterations per epoch so that one validation pass is at most EVAL_SHARE of an epoch
    iters = max(10 if n_val else 100, math.ceil(eval_s * (1 - EVAL_SHARE) / EVAL_SHARE / measured.step_s))
    epoch_s = iters * measured.step_s + eval_s
    epochs = int(budget_s * BUDGET_USE // epoch_s)
    if epochs < 1:
        need = math.ceil(epoch_s / BUDGET_USE / 60 * 10) / 10
        raise DualsegError(f"--budget-min {budget_min:g} is too small: one epoch ({iters} steps of "
                           f"{measured.step_s:.2f} s + validation {eval_s:.1f} s) takes {epoch_s / 60:.2f} min on this "
                           f"machine; use --budget-min {need:g} or more")
    timing = (f"measured here: {measured.step_s:.3f} s/step ({measured.device}, {measured.precision}, "
              f"{measured.threads} threads), validation {eval_s:.1f} s ({n_val} images)")
    plan.set("train.iters_per_epoch", iters, f"validation <= {EVAL_SHARE:.0%} of each epoch; {timing}")
    plan.set("train.epochs", epochs, f"{epochs} x {iters} = {epochs * iters} steps fill {BUDGET_USE:.0%} of "
                                     f"{budget_min:g} min (at most {steps} without validation)")
    # the trainer checks its time limit after every step and then validates the epoch it cut: leave room for
    # the step that crosses the limit and that validation pass
    tail_s = measured.step_s + eval_s
    limit = round(max(tail_s / 60, budget_min - tail_s / 60), 3)
    plan.set("train.time_limit_min", limit, f"--budget-min {budget_min:g} less one step and one validation pass "
                                            f"({tail_s:.0f} s): the limit is checked after every step")
    plan.set("train.schedule", {"name": "poly", "step": "iter", "power": 0.9, "warmup_epochs": 1, "horizon": "time"},
             "poly decay over the time budget (ends at the limit however fast this machine runs), 1 warm-up epoch")


def plan_config(fp: dict, data_root: str | Path, model: str = "unet", budget_min: float | None = None,
                device: str = "auto", overrides: list[str] | None = None,
                measure: Callable[..., Probe] = probe,
                count_validation: Callable[[Config], int] = validation_images) -> Plan:
    """Plan a config for ``model`` on the fingerprinted folder ``data_root`` (see the module docstring for the
    rules). ``measure`` times the planned network (:func:`~dualseg.planning.probe.probe`) and ``count_validation``
    counts the validation images of the planned config, overrides applied (:func:`validation_images`); tests pass
    stand-ins.
    ``overrides`` (``KEY=VALUE``, as ``dualseg train --set``) are applied last and checked with the config."""
    if budget_min is not None and budget_min <= 0:
        raise DualsegError(f"--budget-min must be positive, got {budget_min:g}")
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    d = fp["description"]
    name = d["name"] if d["name"] != "generic" else Path(data_root).name
    plan = Plan({"name": f"{name}_{model}_plan", "seed": 0})
    plan.set("data.root", str(data_root), "the fingerprinted folder")
    if d["name"] in list_descriptions():
        plan.set("data.dataset", d["name"], "the dataset description the folder resolved to")
    else:  # a description inferred from the files (named after the folder) is inferred again, the same way
        plan.set("data.dataset", "auto", "no registered description: classes and channels inferred from the files")
    patch, why = _patch(fp, 512 if gpu else 256)
    lr_factor = 2 if _accepts(model, "upscale", 2) else 1  # models with an SR stream take LR inputs
    args = _network(plan, model, [s // lr_factor for s in patch], gpu)
    if lr_factor > 1:
        _sr_stream(plan, lr_factor)
    divisor = _size_divisor(model, args, fp["channels"], len(fp["classes"])) * lr_factor
    smallest = min(fp["image_sizes"]["height"]["min"], fp["image_sizes"]["width"]["min"])
    if smallest < 2 * divisor:
        raise DualsegError(f"images as small as {smallest} px a side are too small for {model} (it needs at least "
                           f"{2 * divisor} px: twice its size divisor {divisor}); upsample the images or plan for a "
                           "model with fewer down-samplings")
    patch = [_round_down(s, divisor) for s in patch]
    if "img_size" in args:
        patch = [min(patch)] * 2
    _normalize(plan, fp)
    _augment(plan, fp)
    _loss(plan, fp, lr_factor > 1)
    plan.set("train.optimizer", {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
             "AdamW 1e-3: within the best learning rates of the U-Net sweeps (3e-4 ACDC ... 3e-3 ISBI 2012)")
    plan.set("train.grad_clip", 12.0, "as nnU-Net")
    plan.set("train.precision", "auto", "bf16 where this machine computes it natively, else fp32")
    plan.set("train.monitor", "dice", "checkpoint with the best validation Dice")
    patch, batch, measured, free = _batch(measure, plan, fp, patch, divisor, lr_factor, device)
    plan.probe = measured
    plan.set("data.patch_size", patch, why + f"; multiple of {divisor}")
    fits = int(free // max(measured.activation_mib, 1e-6))
    plan.set("train.batch_size", batch, f"{measured.activation_mib:.0f} MiB of activations per patch; a quarter "
                                        f"of the free memory ({free:.0f} MiB) holds {fits}")
    if budget_min is not None:
        # the split as training will make it: the overrides (a protocol, a fold) are applied here and again at the end
        _steps(plan, measured, count_validation(config_from_dict(apply_overrides(plan.config, overrides or []))),
               budget_min)
    else:
        plan.set("train.epochs", 50, "no --budget-min: 50 x 100 steps")
        plan.set("train.iters_per_epoch", 100, "no --budget-min: 50 x 100 steps")
        plan.set("train.schedule", {"name": "poly", "step": "iter", "power": 0.9, "warmup_epochs": 1},
                 "poly decay, 1 warm-up epoch")
    if fp.get("fov_masks"):
        plan.set("eval.use_fov", True, "FOV masks present: metrics and losses inside the field of view")
    spacing = fp.get("spacing")
    if spacing and spacing["source"] == "files" and spacing["images_stating"] == fp["pairs"]:
        plan.set("data.scale_proxy", "spacing", f"every image file states its pixel spacing (median "
                 f"{spacing['mm']['median']:.4g} mm): predict brings new images to it")
    if overrides:
        plan.config = apply_overrides(plan.config, overrides)
        for item in overrides:
            plan.reasons[item.split("=", 1)[0].strip()] = "--set"
    plan.validated()
    return plan
