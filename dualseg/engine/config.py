"""The run configuration: YAML -> validated dataclasses, with ``--set key=value`` overrides.

Unknown keys fail with a did-you-mean, wrong types name the key and the expected type. The resolved config is
written to the run directory, so a run can always be repeated.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dualseg.errors import DualsegError, did_you_mean


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the training augmentations (0 disables one)."""

    flip: float = 0.5
    rot90: float = 0.5
    affine: float = 0.0
    rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    elastic: float = 0.0
    elastic_magnitude: tuple[float, float] = (1.0, 2.0)
    intensity: float = 0.15
    gamma: float = 0.15
    noise: float = 0.1


@dataclass
class ModelConfig:
    name: str = "unet"
    in_channels: int | None = None  # default: the dataset description's channels
    num_classes: int | None = None  # default: the dataset's classes (2 for binary: softmax)
    args: dict[str, Any] = field(default_factory=dict)  # model-specific options


@dataclass
class SplitConfig:
    strategy: Literal["default", "random", "kfold", "file"] = "default"
    seed: int = 0
    val_fraction: float | None = None  # None: the dataset description's
    test_fraction: float | None = None
    folds: int = 5
    fold: int = 0
    file: str | None = None
    # a named protocol (seeded copies of every image + a test-rotating split; dualseg/data/splits.py PROTOCOLS):
    # drfl_leaky (DRFL Table 3: copies split one by one) or drfl_clean (all copies of an image in one split)
    protocol: str | None = None


@dataclass
class SRConfig:
    """Super-resolution pairs for dual-stream methods (see dualseg/data/sr_pairs.py)."""

    mode: Literal["none", "downsample", "teacher"] = "none"
    scale: int = 2
    mask_at: Literal["input", "hr"] = "input"  # label resolution: the input's (DRFL) or the HR target's (DS2F)
    targets_dir: str | None = None  # teacher mode: made by 'dualseg make-sr-targets'


@dataclass
class DataConfig:
    root: str = ""
    dataset: str = "auto"  # a registered description, or 'auto' (by folder name, else inferred)
    image_dir: str | None = None
    mask_dir: str | None = None
    fov_dir: str | None = None
    instance_masks: bool | None = None  # masks hold instance ids (e.g. dsb2018's instance_masks/): reduce to foreground
    normalize: Literal["zscore", "unit", "imagenet"] = "zscore"
    patch_size: list[int] | None = None  # random training crops (H, W); None = whole images
    resize: list[int] | None = None  # resize inputs to (H, W) before the model; logits go back to original size
    num_workers: int | None = None  # DataLoader worker processes; None: 0 on CPU, up to 4 per GPU
    pin_memory: bool | None = None  # page-locked batches for faster host-to-GPU copies; None: on CUDA
    persistent_workers: bool = True  # keep workers (and their decoded-image caches) alive across epochs
    cache_mb: int = 2048
    split: SplitConfig = field(default_factory=SplitConfig)
    sr: SRConfig = field(default_factory=SRConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimizerConfig:
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.99
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    name: Literal["constant", "poly", "cosine", "linear_decay", "plateau"] = "poly"
    step: Literal["iter", "epoch"] = "iter"
    power: float = 0.9  # poly
    decay_start: int = 0  # linear_decay: constant for this many epochs, then linear to zero
    warmup_epochs: int = 0
    min_lr: float = 0.0
    factor: float = 0.5  # plateau
    patience: int = 10  # plateau


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 2
    iters_per_epoch: int | None = None  # None: one pass over the training images
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where native (AMX CPUs, recent GPUs)
    channels_last: bool = True  # NHWC memory layout: faster convolutions on CPU (oneDNN) and tensor cores
    grad_clip: float | None = 12.0
    val_every: int = 1
    monitor: str = "dice"  # foreground-mean validation metric that picks checkpoints/best
    early_stopping: int | None = None  # epochs without improvement before stopping
    time_limit_min: float | None = None  # stop (after a checkpoint) when training time exceeds this
    select_on: Literal["val", "test"] = "val"  # 'test' only to reproduce papers that selected on test
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = True
    threads: int | None = None  # torch CPU threads; None = PyTorch's default
    checkpoint_every: int | None = None  # also write checkpoints/last.pt every N steps inside an epoch (resumable)
    nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/Inf loss: stop with an error, or skip that step and go on
    sync_batchnorm: bool = False  # multi-GPU runs: batch-norm statistics over the global batch (SyncBatchNorm)
    # multi-process runs: allow parameters without a gradient in a step (outputs no loss term reads, e.g. deep-
    # supervision heads); false saves one autograd-graph traversal per step when the loss reads every output
    ddp_find_unused_parameters: bool = True


@dataclass
class EvalConfig:
    roi_size: list[int] | None = None  # sliding-window size; None = whole image (padded to the model's divisor)
    overlap: float = 0.5
    use_fov: bool = True  # restrict metrics (and losses) to the field of view when the dataset has one
    # Metric convention (docs/metrics.md): per_image (default), drfl, dataset, per_volume, transunet
    convention: Literal["per_image", "drfl", "dataset", "per_volume", "transunet"] = "per_image"
    volume_pattern: str | None = None  # regex on the stem, group 1 = volume; None: the dataset description's
    spacing: list[float] | None = None  # pixel spacing (row, column) for HD95/ASD; None: pixel units
    slice_spacing: float = 1.0  # distance between the slices of a volume (volume conventions' HD95/ASD)
    surface_metrics: bool = True  # HD95 and ASD (MONAI) in 'dualseg evaluate' (never during training validation)
    pr_auc: bool = True  # average precision from the class probabilities in 'dualseg evaluate'
    sr_metrics: bool = True  # PSNR/SSIM of a model's "sr" output in 'dualseg evaluate'
    resize_back: Literal["auto", "bilinear", "nearest"] = "auto"  # data.resize: logits back to full size; auto:
    # nearest for the volume conventions (label maps, as TransUNet's order-0 zoom), bilinear otherwise
    threshold: float | None = None  # binary tasks: foreground where its probability > threshold (None: argmax)
    tune_threshold: bool = False  # 'dualseg evaluate': pick the threshold with the best Dice on the selection split


@dataclass
class Config:
    name: str = "run"
    output_dir: str | None = None  # default: runs/<name>
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "ce", "weight": 1.0}, {"name": "dice", "weight": 1.0}]
    )
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- validation -----------------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert where safe (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except DualsegError as e:
                errors.append(str(e))
        raise DualsegError(errors[0] if len(errors) == 1 else f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            choices = [str(a) for a in args]
            hint = did_you_mean(str(value), choices)
            raise DualsegError(f"{key}: '{value}' is not one of {', '.join(choices)}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise DualsegError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        if origin is tuple and len(args) >= 2 and args[1] is not Ellipsis and len(items) != len(args):
            raise DualsegError(f"{key}: expected {len(args)} values, got {len(items)}")
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise DualsegError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise DualsegError(f"{key}: expected true or false, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise DualsegError(f"{key}: expected an integer, got {value!r}")
    if not isinstance(value, tp):
        raise DualsegError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DualsegError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise DualsegError(
                f"unknown config key '{full}'{did_you_mean(str(key), names)}; valid keys here: {', '.join(names)}"
            )
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


def _check_values(cfg: Config) -> None:
    positive = {
        "train.epochs": cfg.train.epochs,
        "train.batch_size": cfg.train.batch_size,
        "train.val_every": cfg.train.val_every,
    }
    if cfg.train.iters_per_epoch is not None:
        positive["train.iters_per_epoch"] = cfg.train.iters_per_epoch
    if cfg.train.checkpoint_every is not None:
        positive["train.checkpoint_every"] = cfg.train.checkpoint_every
    for key, value in positive.items():
        if value <= 0:
            raise DualsegError(f"{key} must be a positive integer, got {value}")
    if cfg.train.optimizer.lr <= 0:
        raise DualsegError(f"train.optimizer.lr must be positive, got {cfg.train.optimizer.lr}")
    for key in ("patch_size", "resize"):
        size = getattr(cfg.data, key)
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise DualsegError(f"data.{key} must be two positive integers [H, W], got {size}")
    if cfg.data.sr.scale < 2:
        raise DualsegError(f"data.sr.scale must be an integer >= 2, got {cfg.data.sr.scale}")
    if cfg.data.num_workers is not None and cfg.data.num_workers < 0:
        raise DualsegError(f"data.num_workers must be >= 0, got {cfg.data.num_workers}")
    if cfg.eval.threshold is not None and not 0 < cfg.eval.threshold < 1:
        raise DualsegError(f"eval.threshold must be a probability in (0, 1), got {cfg.eval.threshold}")
    if cfg.eval.spacing is not None and (len(cfg.eval.spacing) != 2 or min(cfg.eval.spacing) <= 0):
        raise DualsegError(f"eval.spacing must be two positive numbers [row, column], got {cfg.eval.spacing}")
    if not cfg.loss:
        raise DualsegError("loss must list at least one term, e.g. [{name: ce}, {name: dice}]")


def config_from_dict(data: dict[str, Any]) -> Config:
    cfg = _build(Config, data)
    _check_values(cfg)
    if cfg.output_dir is None:
        cfg.output_dir = f"runs/{cfg.name}"
    return cfg


def parse_override(item: str) -> tuple[list[str], Any]:
    """'train.epochs=5' -> (['train', 'epochs'], 5); the value is parsed as YAML (numbers, lists, null...)."""
    if "=" not in item:
        raise DualsegError(f"--set expects KEY=VALUE, got '{item}'")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DualsegError(f"--set {item}: '{part}' is not a section")
        node[path[-1]] = value
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DualsegError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DualsegError(f"{path} is not valid YAML{where}: {problem or e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DualsegError(f"{path}: the top level of a config must be a mapping")
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from defaults when ``path`` is None), apply ``--set`` overrides, validate."""
    data = load_yaml(path) if path else {}
    return config_from_dict(apply_overrides(data, overrides or []))


def dump_config(cfg: Config) -> str:
    def plain(obj: Any) -> Any:
        if isinstance(obj, tuple):
            return [plain(o) for o in obj]
        if isinstance(obj, list):
            return [plain(o) for o in obj]
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        return obj

    return yaml.safe_dump(plain(cfg.to_dict()), sort_keys=False)
