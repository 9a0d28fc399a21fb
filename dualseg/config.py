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

from dualseg.errors import DualsegError, did_you_mean, short_repr
from dualseg.safety.yaml_loader import load_yaml_text

SEED_MAX = 2**32 - 1  # NumPy's seeds are 32-bit
SIDE_MAX = 65536  # largest image side a size setting may name
DEFAULT_SCALE_RANGE = (0.85, 1.15)  # data.augment.scale, and the scale_range of dataset descriptions


def bounded(default: Any = None, low: float | None = None, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False) -> Any:
    """A config field whose value (or each item of a list value) must lie within the bounds; checked when the
    config is read, so every key's limits live here, in the schema."""
    return field(default=default, metadata={"bounds": (low, high, low_open, high_open)})


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _bounds_text(value: Any, low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low == 1 and high is None and isinstance(value, int):
        return "a positive integer"
    if low is not None and high is not None:
        if isinstance(value, int) and not (low_open or high_open):
            return f"an integer in {_num(low)}..{_num(high)}"
        return f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return "positive" if low == 0 and low_open else f"{'>' if low_open else '>='} {_num(low)}"
    return f"{'<' if high_open else '<='} {_num(high)}"


def _check_bounds(key: str, value: Any, bounds: tuple) -> None:
    items = value if isinstance(value, list | tuple) else [value]
    low, high, low_open, high_open = bounds
    for item in items:
        if item is None or isinstance(item, bool) or not isinstance(item, int | float):
            continue
        below = low is not None and (item <= low if low_open else item < low)
        above = high is not None and (item >= high if high_open else item > high)
        if below or above or item != item:  # NaN is outside every range
            raise DualsegError(f"{key} must be {_bounds_text(item, *bounds)}, got {short_repr(value)}")


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the training augmentations (0 disables one)."""

    flip: float = bounded(0.5, 0, 1)
    rot90: float = bounded(0.5, 0, 1)
    affine: float = bounded(0.0, 0, 1)
    rotate_deg: float = bounded(15.0, 0, 180)
    # the affine's sampling-grid scale range (structures appear 1/s as large), or auto: the dataset description's
    # scale_range (the spread of devices it meets, e.g. DRIVE 0.6-1.7)
    scale: tuple[float, float] | Literal["auto"] = bounded(DEFAULT_SCALE_RANGE, 0, 100, low_open=True)
    # rows: MONAI's RandAffine as configs before it had this key used it (the scale stretches the rows only);
    # isotropic: one factor for both axes, drawn log-uniformly, and the patch cut with room for the widest zoom-out
    # and rotation (zoomed-out patches show image, not mirrored borders; needs data.patch_size)
    scale_mode: Literal["rows", "isotropic"] = "rows"
    elastic: float = bounded(0.0, 0, 1)
    elastic_magnitude: tuple[float, float] = bounded((1.0, 2.0), 0, 1000)
    intensity: float = bounded(0.15, 0, 1)
    gamma: float = bounded(0.15, 0, 1)
    noise: float = bounded(0.1, 0, 1)
    # colour of RGB photographs, drawn for every sample before preprocessing and normalisation (0 = off; refused for
    # gray images): hue shift up to +-hue of the colour circle, saturation factor in 1 +- saturation, per-channel
    # gain (colour cast) in 1 +- channel_gain; histogram_shift: probability of MONAI's RandHistogramShift
    hue: float = bounded(0.0, 0, 0.5)
    saturation: float = bounded(0.0, 0, 1)
    channel_gain: float = bounded(0.0, 0, 1, high_open=True)
    histogram_shift: float = bounded(0.0, 0, 1)

    @property
    def colour_keys(self) -> dict[str, float]:
        """The colour jitter keys that are on, by name."""
        return {k: getattr(self, k) for k in ("hue", "saturation", "channel_gain") if getattr(self, k)}


@dataclass
class ModelConfig:
    name: str = "unet"
    in_channels: int | None = None  # default: the dataset description's channels
    num_classes: int | None = None  # default: the dataset's classes (2 for binary: softmax)
    args: dict[str, Any] = field(default_factory=dict)  # model-specific options


@dataclass
class SplitConfig:
    strategy: Literal["default", "random", "kfold", "file"] = "default"
    seed: int = bounded(0, 0, SEED_MAX)
    val_fraction: float | None = bounded(None, 0, 1, high_open=True)  # None: the dataset description's
    test_fraction: float | None = bounded(None, 0, 1, high_open=True)
    folds: int = bounded(5, 2, 1000)
    fold: int = bounded(0, 0, 999)
    file: str | None = None
    # a named protocol (seeded copies of every image + a test-rotating split; dualseg/data/splits.py PROTOCOLS):
    # drfl_leaky (DRFL Table 3: copies split one by one) or drfl_clean (all copies of an image in one split)
    protocol: str | None = None


@dataclass
class SRConfig:
    """Super-resolution pairs for dual-stream methods (see dualseg/data/sr_pairs.py)."""

    mode: Literal["none", "downsample", "teacher"] = "none"
    scale: int = bounded(2, 2, 16)
    mask_at: Literal["input", "hr"] = "input"  # label resolution: the input's (DRFL) or the HR target's (DS2F)
    interpolation: Literal["area", "bicubic", "bilinear"] = "area"  # downsample mode: how the LR input is made
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
    # before normalisation, in training and prediction (dualseg/data/preprocess.py): green = the green channel of RGB
    # (the model takes 1 channel), clahe = contrast-limited adaptive histogram equalisation
    preprocess: Literal["none", "green", "clahe"] = "none"
    patch_size: list[int] | None = bounded(None, 1, SIDE_MAX)  # random training crops (H, W); None = whole images
    # resize inputs to (H, W) before the model; logits go back to original size
    resize: list[int] | None = bounded(None, 1, SIDE_MAX)
    num_workers: int | None = bounded(None, 0, 256)  # DataLoader worker processes; None: 0 on CPU, up to 4 per GPU
    pin_memory: bool | None = None  # page-locked batches for faster host-to-GPU copies; None: on CUDA
    persistent_workers: bool = True  # keep workers (and their decoded-image caches) alive across epochs
    cache_mb: int = bounded(2048, 0, 2**24)
    # the length measured to bring prediction inputs to the training scale (docs/inference.md#scale); auto: the
    # dataset description's (drive: fov_diameter; the others: none)
    scale_proxy: Literal["auto", "none", "fov_diameter", "object_size", "spacing"] = "auto"
    # pixel spacing (mm) of the training images whose files state none, for scale_proxy: spacing; None: the
    # description's (docs/inference.md#scale)
    spacing_mm: float | None = bounded(None, 0, low_open=True)
    split: SplitConfig = field(default_factory=SplitConfig)
    sr: SRConfig = field(default_factory=SRConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimizerConfig:
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = bounded(1e-3, 0, low_open=True)
    weight_decay: float = bounded(1e-4, 0, 10)
    momentum: float = bounded(0.99, 0, 1)
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    name: Literal["constant", "poly", "cosine", "linear_decay", "plateau"] = "poly"
    step: Literal["iter", "epoch"] = "iter"
    power: float = bounded(0.9, 0, 100, low_open=True)  # poly
    decay_start: int = bounded(0, 0)  # linear_decay: constant for this many epochs, then linear to zero
    warmup_epochs: int = bounded(0, 0)
    min_lr: float = bounded(0.0, 0)
    factor: float = bounded(0.5, 0, 1, low_open=True, high_open=True)  # plateau
    patience: int = bounded(10, 0)  # plateau
    # epochs: the schedule runs over train.epochs; time: over train.time_limit_min (progress = the spent share of
    # the time budget; training then runs until the time limit, train.epochs only sets warmup/decay_start shares)
    horizon: Literal["epochs", "time"] = "epochs"


@dataclass
class TrainConfig:
    epochs: int = bounded(100, 1)
    batch_size: int = bounded(2, 1)
    iters_per_epoch: int | None = bounded(None, 1)  # None: one pass over the training images
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where native (AMX CPUs, recent GPUs)
    channels_last: bool = True  # NHWC memory layout: faster convolutions on CPU (oneDNN) and tensor cores
    grad_clip: float | None = bounded(12.0, 0, low_open=True)
    val_every: int = bounded(1, 1)
    monitor: str = "dice"  # foreground-mean validation metric that picks checkpoints/best
    early_stopping: int | None = bounded(None, 1)  # epochs without improvement before stopping
    # stop when training time exceeds this: checked after every step; the cut epoch is validated and checkpointed
    time_limit_min: float | None = bounded(None, 0, low_open=True)
    # the clock of time_limit_min: wall (elapsed time) or process (this process's CPU time: equal budgets stay
    # equal compute on a CPU shared with other work; counts in-process data loading, not worker processes)
    time_limit_clock: Literal["wall", "process"] = "wall"
    select_on: Literal["val", "test"] = "val"  # 'test' only to reproduce papers that selected on test
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = True
    threads: int | None = bounded(None, 1, 4096)  # torch CPU threads; None = PyTorch's default
    # also write checkpoints/last.pt every N steps inside an epoch (resumable)
    checkpoint_every: int | None = bounded(None, 1)
    nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/Inf loss: stop with an error, or skip that step and go on
    sync_batchnorm: bool = False  # multi-GPU runs: batch-norm statistics over the global batch (SyncBatchNorm)
    # multi-process runs: allow parameters without a gradient in a step (outputs no loss term reads, e.g. deep-
    # supervision heads); false saves one autograd-graph traversal per step when the loss reads every output
    ddp_find_unused_parameters: bool = True


@dataclass
class EvalConfig:
    # sliding-window size; None = whole image (padded to the model's divisor)
    roi_size: list[int] | None = bounded(None, 1, SIDE_MAX)
    overlap: float = bounded(0.5, 0, 1, high_open=True)
    use_fov: bool = True  # restrict metrics (and losses) to the field of view when the dataset has one
    # Metric convention (docs/metrics.md): per_image (default), drfl, dataset, per_volume, transunet
    convention: Literal["per_image", "drfl", "dataset", "per_volume", "transunet"] = "per_image"
    volume_pattern: str | None = None  # regex on the stem, group 1 = volume; None: the dataset description's
    # pixel spacing (row, column) for HD95/ASD; None: pixel units
    spacing: list[float] | None = bounded(None, 0, low_open=True)
    # distance between the slices of a volume (volume conventions' HD95/ASD)
    slice_spacing: float = bounded(1.0, 0, low_open=True)
    surface_metrics: bool = True  # HD95 and ASD (MONAI) in 'dualseg evaluate' (never during training validation)
    pr_auc: bool = True  # average precision from the class probabilities in 'dualseg evaluate'
    sr_metrics: bool = True  # PSNR/SSIM of a model's "sr" output in 'dualseg evaluate'
    resize_back: Literal["auto", "bilinear", "nearest"] = "auto"  # data.resize: logits back to full size; auto:
    # nearest for the volume conventions (label maps, as TransUNet's order-0 zoom), bilinear otherwise
    # binary tasks: foreground where its probability > threshold (None: argmax)
    threshold: float | None = bounded(None, 0, 1, low_open=True, high_open=True)
    tune_threshold: bool = False  # 'dualseg evaluate': pick the threshold with the best Dice on the selection split


@dataclass
class Config:
    name: str = "run"
    output_dir: str | None = None  # default: runs/<name>
    seed: int = bounded(0, 0, SEED_MAX)
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
        if len(errors) == 1:
            raise DualsegError(errors[0])
        raise DualsegError(f"{key}: " + "; or ".join(e.removeprefix(f"{key}: ") for e in errors))
    if origin is Literal:
        if value not in args:
            choices = [str(a) for a in args]
            hint = did_you_mean(str(value)[:100], choices)
            raise DualsegError(f"{key}: {short_repr(value)} is not one of {', '.join(choices)}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise DualsegError(f"{key}: expected a list, got {short_repr(value)}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        if origin is tuple and len(args) >= 2 and args[1] is not Ellipsis and len(items) != len(args):
            raise DualsegError(f"{key}: expected {len(args)} values, got {len(items)}")
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise DualsegError(f"{key}: expected a mapping, got {short_repr(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise DualsegError(f"{key}: expected true or false, got {short_repr(value)}")
    if tp is int and isinstance(value, bool):
        raise DualsegError(f"{key}: expected an integer, got {short_repr(value)}")
    if not isinstance(value, tp):
        raise DualsegError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {short_repr(value)}")
    return value


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DualsegError(f"{prefix or 'config'}: expected a mapping, got {short_repr(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else short_repr(key, 60).strip("'")
        if key not in fields:
            raise DualsegError(
                f"unknown config key '{full}'{did_you_mean(str(key), names)}; valid keys here: {', '.join(names)}"
            )
        kwargs[key] = _coerce(value, hints[key], full)
        if "bounds" in fields[key].metadata:
            _check_bounds(full, kwargs[key], fields[key].metadata["bounds"])
    return cls(**kwargs)


def _check_values(cfg: Config) -> None:
    """Rules across values (single values' bounds are in the schema: :func:`bounded`)."""
    for key in ("patch_size", "resize"):
        size = getattr(cfg.data, key)
        if size is not None and len(size) != 2:
            raise DualsegError(f"data.{key} must be two positive integers [H, W], got {size}")
    if cfg.eval.spacing is not None and len(cfg.eval.spacing) != 2:
        raise DualsegError(f"eval.spacing must be two positive numbers [row, column], got {cfg.eval.spacing}")
    augment = cfg.data.augment
    if augment.scale_mode == "isotropic" and not cfg.data.patch_size:
        raise DualsegError("data.augment.scale_mode 'isotropic' cuts training patches: set data.patch_size too (or "
                           "scale_mode: rows)")
    if cfg.data.sr.mode == "teacher" and (cfg.data.preprocess != "none" or augment.colour_keys
                                          or augment.histogram_shift):
        raise DualsegError("data.sr.mode 'teacher' reads SR targets made from the unprocessed images: set "
                           "data.preprocess to none and the colour keys of data.augment to 0")
    if not cfg.loss:
        raise DualsegError("loss must list at least one term, e.g. [{name: ce}, {name: dice}]")
    if cfg.train.schedule.horizon == "time" and not cfg.train.time_limit_min:
        raise DualsegError("train.schedule.horizon 'time' runs the schedule over the time budget: set "
                           "train.time_limit_min too (or use horizon 'epochs')")


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
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DualsegError(f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); a config is "
                           "a YAML text file saved as UTF-8") from e
    try:
        data = load_yaml_text(text, str(path))
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
