"""``dualseg predict --scale auto|none|FACTOR``: the factor each 2D input is resampled by before the model, so that
it reaches the scale the model was trained at (:mod:`dualseg.inference.scale`), and ``scales.csv`` beside the
predictions."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dualseg.data.descriptions import DatasetDescription
from dualseg.data.spacing import pixels_per_mm
from dualseg.errors import DualsegError
from dualseg.inference.scale import check_factor, fov_diameter, object_size, scale_factor
from dualseg.inference.spec import InputSpec
from dualseg.inference.train_scale import background_class
from dualseg.safety.atomic import atomic_write_text

SCALES_FILE = "scales.csv"
NO_SCALE_NOTICE = ("notice: this model records no training scale (its run predates scale recording or has no scale "
                   "proxy): predicting at the input's own scale")


def parse_scale(value: str | float) -> str | float:
    """``auto``, ``none`` or a factor in the sane range (one-line error otherwise)."""
    if isinstance(value, str) and value in ("auto", "none"):
        return value
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise DualsegError(f"--scale must be auto, none or a factor such as 1.5, got {value!r}") from None
    return check_factor(factor, "--scale")


@dataclass(frozen=True)
class ScaleChoice:
    """The factor one input was resampled by: ``proxy`` measured ``measured`` px (``factor`` given: no proxy)."""

    file: str
    proxy: str
    measured: float | None
    factor: float


class InputScaler:
    """Chooses each 2D input's factor from the ``--scale`` setting and the model's spec, and records it.

    ``auto``: factor = the spec's ``train_scale`` / the proxy measured on the input (``object_size``: on
    ``first_pass``, the labels predicted at the input's own scale; ``spacing``: the pixels per mm the input's file
    states, else ``spacing_mm`` (``--spacing``)); a model without a recorded scale predicts at the input's scale
    after one notice. A FACTOR: that factor for every input. ``none``: factor 1, nothing
    recorded. Notices go to ``notice`` (stdout: stderr holds only the one line of an error)."""

    def __init__(self, spec: InputSpec, setting: str | float, description: DatasetDescription,
                 notice: Callable[[str], None] = print, spacing_mm: float | None = None) -> None:
        self.spec, self.setting, self.notice = spec, parse_scale(setting), notice
        self.spacing_mm = spacing_mm
        self.background = background_class(description)
        self.choices: list[ScaleChoice] = []
        if self.setting == "auto" and not spec.has_scale:
            notice(NO_SCALE_NOTICE)

    @property
    def active(self) -> bool:
        """Whether inputs may be resampled (and ``scales.csv`` is written)."""
        return isinstance(self.setting, float) or (self.setting == "auto" and self.spec.has_scale)

    def choose(self, file: str, image: np.ndarray, first_pass: Callable[[], np.ndarray],
               source: Path | None = None) -> ScaleChoice | None:
        """The factor of one input: ``image`` (H, W[, C]) as stored (any intensity range), read from ``source``
        (None: an array); None when inactive."""
        if not self.active:
            return None
        if self.fixed_factor(file) is not None:
            return self.choices[-1]
        proxy = self.spec.scale_proxy
        if proxy == "spacing":
            measured = self.resolution(source)
        elif proxy == "fov_diameter":
            measured = fov_diameter(image=image)
        else:
            measured = object_size(first_pass(), self.background)
        return self._record(file, proxy, measured)

    def resolution(self, source: Path | None) -> float | None:
        """Pixels per mm of an input: what its file states, else ``--spacing``, else None."""
        stated = None if source is None else pixels_per_mm(source)
        if stated is None and self.spacing_mm is not None:
            return 1 / self.spacing_mm
        return stated

    def _record(self, file: str, proxy: str, measured: float | None) -> ScaleChoice:
        if measured is None:
            hint = " (give it with --spacing MM)" if proxy == "spacing" else ""
            self.notice(f"notice: {file}: no {proxy} to measure{hint}; predicted at its own scale")
            factor = 1.0
        else:
            factor = check_factor(scale_factor(self.spec.train_scale, measured, self.spec.train_scale_range), file)
        self.choices.append(ScaleChoice(file, proxy, measured, factor))
        return self.choices[-1]

    def volume_factor(self, path: Path) -> float | None:
        """A volume's factor, recorded: a FACTOR setting; with ``auto`` and the ``spacing`` proxy, from the
        header's in-plane spacing (or ``--spacing``); else None (its own scale: the image proxies are 2D)."""
        fixed = self.fixed_factor(path.name)
        if fixed is not None or not (self.active and self.spec.scale_proxy == "spacing"):
            return fixed
        return self._record(path.name, "spacing", self.resolution(path)).factor

    def fixed_factor(self, file: str) -> float | None:
        """A FACTOR setting for an input no proxy is measured on (a volume), recorded; else None."""
        if not isinstance(self.setting, float):
            return None
        self.choices.append(ScaleChoice(file, "factor", None, self.setting))
        return self.setting

    def write_csv(self, out_dir: Path) -> Path | None:
        """``OUT_DIR/scales.csv`` (file, proxy, measured_px, factor) when inputs may have been resampled
        (``measured_px``: the proxy's length in pixels; for ``spacing``, the pixels one mm spans)."""
        if not self.active:
            return None
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        rows.writerow(["file", "proxy", "measured_px", "factor"])
        for c in self.choices:
            rows.writerow([c.file, c.proxy, "" if c.measured is None else f"{c.measured:.2f}", f"{c.factor:.4f}"])
        target = out_dir / SCALES_FILE
        atomic_write_text(target, text.getvalue())
        return target
