"""How a model's input is made from an image, and how the model is run: one record, built once from the config
(by the trainer), stored in every checkpoint and package, and taken by evaluation, prediction and overlays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from dualseg.config import Config
from dualseg.data.preprocess import PREPROCESSES
from dualseg.inference.scale import PROXIES, TrainScale

PREDICTION_KEYS = ("roi_size", "overlap", "precision")  # the fields a package keeps under "prediction"


def _pair(value: Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if len(value) != 2:
        raise ValueError(f"expected two sizes H W, got {list(value)}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class InputSpec:
    """The model input and the prediction settings of a trained model.

    ``normalize``: intensity normalisation (``dualseg.data.dataset.normalize_image``); ``resize``: the (H, W) the
    model was trained on (the input is resized to it, the logits back); ``input_scale`` / ``input_mode``: the model
    takes inputs scaled by this factor, made with this interpolation (SR methods on downsampled inputs);
    ``size_divisor``: the model's input sides must divide by it; ``roi_size`` / ``overlap``: sliding window (None:
    whole image); ``precision``: ``train.precision``; ``channels_last``: the memory layout (NHWC when True);
    ``preprocess``: the step before normalisation (``dualseg.data.preprocess``: none, green, clahe);
    ``scale_proxy`` / ``train_scale`` / ``train_scale_range``: the length (``dualseg.inference.scale``) measured
    on the training images, its median and (min, max) in pixels (None: not recorded).
    The defaults are what a record without the key implies (older packages: NHWC, no preprocessing, no scale)."""

    normalize: str = "zscore"
    resize: tuple[int, int] | None = None
    input_scale: float = 1.0
    input_mode: str = "area"
    size_divisor: int = 1
    roi_size: tuple[int, int] | None = None
    overlap: float = 0.5
    precision: str = "auto"
    channels_last: bool = True
    preprocess: str = "none"
    scale_proxy: str = "none"
    train_scale: float | None = None
    train_scale_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", _pair(self.resize))
        object.__setattr__(self, "roi_size", _pair(self.roi_size))
        self._check_scale()

    def _check_scale(self) -> None:
        if self.scale_proxy not in PROXIES:
            raise ValueError(f"scale_proxy must be one of {', '.join(PROXIES)}, got {self.scale_proxy!r}")
        if self.train_scale is not None:
            object.__setattr__(self, "train_scale", float(self.train_scale))
            if not self.train_scale > 0:
                raise ValueError(f"train_scale must be positive, got {self.train_scale}")
        if self.train_scale_range is not None:
            low, high = (float(v) for v in self.train_scale_range)
            object.__setattr__(self, "train_scale_range", (low, high))

    @property
    def has_scale(self) -> bool:
        """Whether the model's training scale is recorded (a proxy and its median)."""
        return self.scale_proxy != "none" and self.train_scale is not None

    def with_train_scale(self, proxy: str, scale: TrainScale | None) -> InputSpec:
        """This spec with the training scale the trainer measured (``scale`` None: the proxy measured nothing)."""
        if scale is None:
            return replace(self, scale_proxy="none", train_scale=None, train_scale_range=None)
        return replace(self, scale_proxy=proxy, train_scale=scale.median, train_scale_range=scale.spread)

    @classmethod
    def from_config(cls, cfg: Config, size_divisor: int) -> InputSpec:
        """The spec of a run's config; the input is downsampled by ``data.sr.scale`` in SR ``downsample`` mode."""
        sr = cfg.data.sr
        return cls(
            normalize=cfg.data.normalize, resize=cfg.data.resize,
            input_scale=1 / sr.scale if sr.mode == "downsample" else 1.0, input_mode=sr.interpolation,
            size_divisor=int(size_divisor), roi_size=cfg.eval.roi_size, overlap=cfg.eval.overlap,
            precision=cfg.train.precision, channels_last=cfg.train.channels_last, preprocess=cfg.data.preprocess,
        )

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout the model runs in: ``torch.channels_last`` (NHWC) or ``torch.contiguous_format``."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (sizes as lists)."""
        data = asdict(self)
        for key in ("resize", "roi_size", "train_scale_range"):
            data[key] = None if data[key] is None else list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **defaults: Any) -> InputSpec:
        """The spec of a stored record; keys it lacks take ``defaults``, then the class defaults; other keys are
        ignored (a package's ``input`` section also holds ``channels``). Bad values raise TypeError/ValueError."""
        values = {**defaults, **{f.name: data[f.name] for f in fields(cls) if f.name in data}}
        for key, kind in (("input_scale", float), ("overlap", float), ("size_divisor", int)):
            if key in values:
                values[key] = kind(values[key])
        for key in ("normalize", "input_mode", "precision", "scale_proxy", "preprocess"):
            if key in values and not isinstance(values[key], str):
                raise TypeError(f"{key} must be a string, got {values[key]!r}")
        if values.get("preprocess", "none") not in PREPROCESSES:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESSES)}, got {values['preprocess']!r}")
        if "channels_last" in values and not isinstance(values["channels_last"], bool):
            raise TypeError(f"channels_last must be true or false, got {values['channels_last']!r}")
        return cls(**values)


DEFAULT_SPEC = InputSpec()  # whole image, no resize or scaling: what a call without a spec means
