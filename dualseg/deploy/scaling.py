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
    ``first_pass``, the labels predicted at the input's own scale); a model without a recorded scale predicts at
    the input's scale after one notice. A FACTOR: that factor for every input. ``none``: factor 1, nothing
    recorded. Notices go to ``notice`` (stdout: stderr holds only the one line of an error)."""

    def __init__(self, spec: InputSpec, setting: str | float, description: DatasetDescription,
                 notice: Callable[[str], None] = print) -> None:
        self.spec, self.setting, self.notice = spec, parse_scale(setting), notice
        self.background = background_class(description)
        self.choices: list[ScaleChoice] = []
        if self.setting == "auto" and not spec.has_scale:
            notice(NO_SCALE_NOTICE)

    @property
    def active(self) -> bool:
        """Whether inputs may be resampled (and ``scales.csv`` is written)."""
        return isinstance(self.setting, float) or (self.setting == "auto" and self.spec.has_scale)

    def choose(self, file: str, image: np.ndarray, first_pass: Callable[[], np.ndarray]) -> ScaleChoice | None:
        """The factor of one input: ``image`` (H, W[, C]) as stored (any intensity range); None when inactive."""
        if not self.active:
            return None
        if self.fixed_factor(file) is not None:
            return self.choices[-1]
        proxy = self.spec.scale_proxy
        measured = fov_diameter(image=image) if proxy == "fov_diameter" else object_size(first_pass(), self.background)
        if measured is None:
            self.notice(f"notice: {file}: no {proxy} to measure; predicted at its own scale")
            factor = 1.0
        else:
            factor = check_factor(scale_factor(self.spec.train_scale, measured, self.spec.train_scale_range), file)
        self.choices.append(ScaleChoice(file, proxy, measured, factor))
        return self.choices[-1]

    def fixed_factor(self, file: str) -> float | None:
        """A FACTOR setting for an input no proxy is measured on (a volume), recorded; else None."""
        if not isinstance(self.setting, float):
            return None
        self.choices.append(ScaleChoice(file, "factor", None, self.setting))
        return self.setting

    def write_csv(self, out_dir: Path) -> Path | None:
        """``OUT_DIR/scales.csv`` (file, proxy, measured_px, factor) when inputs may have been resampled."""
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
