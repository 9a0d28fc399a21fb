"""Dataset descriptions: what a dataset folder holds (channels, classes, value encoding, default split).

A description is looked up by name (``data.dataset`` in the config) or by the folder's name
(:func:`dualseg.data.resolve.resolve_description`, which infers one for unknown folders). The known datasets register
theirs in :mod:`dualseg.data.datasets`; add one by calling :func:`register_description`. A description travels in
checkpoints and packages as :func:`description_to_dict`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dualseg.config import DEFAULT_SCALE_RANGE
from dualseg.data.names import NameTable
from dualseg.errors import DualsegError

BINARY_0_255 = {0: 0, 255: 1}
# the test and validation fractions of a seeded 80/10/10 split (validation: a ninth of what the test set leaves)
SPLIT_80_10_10 = {"test_fraction": 0.1, "val_fraction": 0.1 / 0.9}


@dataclass(frozen=True)
class DatasetDescription:
    """How to read one dataset folder.

    Attributes:
        name: registry name.
        channels: channels fed to the model (gray 1, RGB 3; RGBA drops alpha, 16-bit is scaled by 65535).
        class_names: one name per class index.
        mask_values: stored mask value -> class index (e.g. ``{0: 0, 255: 1}``); ``None`` means the stored values
            are the class indices already.
        background: the class left out of foreground means, or ``None`` when every class counts (ISBI 2012, whose
            two classes, membrane and cell interior, are both reported).
        instance_masks: masks hold instance ids (0 = background), reduced to one foreground class.
        group_key: maps a stem to the group that must stay within one split (patient, video sequence).
        default_test: selects the held-out test stems (official test set), or ``None`` for a seeded fraction.
        test_fraction: the seeded test fraction when there is no official test set.
        val_fraction: the validation fraction carved from what is left after the test set.
        scale_proxy: the length in pixels that tells the images' scale (``dualseg.inference.scale``:
            ``fov_diameter`` for fundus photographs, ``object_size``, ``spacing``, or ``none``);
            ``data.scale_proxy: auto``.
        spacing_mm: the pixel spacing (mm) of the dataset's images where their files state none (one acquisition
            protocol, as ISBI 2012's 4 nm ssTEM pixels); read by the ``spacing`` proxy.
        scale_range: the affine scale range of ``data.augment.scale: auto``, the spread of pixel scales the
            dataset's images meet on other devices (default: the config's own default, 0.85-1.15).
    """

    name: str
    channels: int
    class_names: tuple[str, ...]
    mask_values: dict[int, int] | None = None
    background: int | None = 0
    image_dir: str = "images"
    mask_dir: str = "masks"
    fov_dir: str | None = None
    instance_masks: bool = False
    group_key: Callable[[str], str] | None = None
    default_test: Callable[[Sequence[str], Path], list[str]] | None = None
    test_fraction: float = 0.0
    val_fraction: float = 0.2
    notes: str = ""
    extra: dict = field(default_factory=dict)
    volume_pattern: str | None = None  # regex on the stem whose group 1 names the volume of a slice (per_volume)
    scale_proxy: str = "none"
    spacing_mm: float | None = None
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def foreground(self) -> list[int]:
        return [c for c in range(self.num_classes) if c != self.background]

    def value_lut(self) -> np.ndarray | None:
        """A lookup table stored value -> class index (-1 for undeclared values), or None for identity."""
        if self.mask_values is None:
            return None
        lut = np.full(max(max(self.mask_values), 255) + 1, -1, dtype=np.int64)
        for value, index in self.mask_values.items():
            lut[value] = index
        return lut

    def encode_mask(self, mask: np.ndarray, path: str | Path = "") -> np.ndarray:
        """Map a stored mask to class indices; values outside the declared classes raise a clear error."""
        if self.instance_masks:
            return (mask > 0).astype(np.int64)
        if self.mask_values == BINARY_0_255 and mask.max(initial=0) <= 1:
            return mask.astype(np.int64)  # 0/1 masks are accepted where 0/255 is declared
        lut = self.value_lut()
        if lut is None:
            out = mask.astype(np.int64)
            bad = np.unique(out[(out < 0) | (out >= self.num_classes)])
        else:
            clipped = np.clip(mask.astype(np.int64), 0, len(lut) - 1)
            out = lut[clipped]
            bad = np.unique(mask[(out < 0) | (mask.astype(np.int64) >= len(lut))])
        if bad.size:
            declared = sorted(self.mask_values) if self.mask_values else list(range(self.num_classes))
            raise DualsegError(
                f"{path}: mask values {bad[:10].tolist()} are outside the declared classes {declared} of dataset "
                f"'{self.name}'; fix the mask or declare the classes (data.dataset / num_classes)"
            )
        return out

    def decode_labels(self, labels: np.ndarray) -> np.ndarray:
        """Class indices back to the stored encoding (e.g. 1 -> 255), for writing predicted masks."""
        if self.mask_values is None:
            return labels.astype(np.uint8 if self.num_classes <= 256 else np.uint16)
        inverse = np.zeros(self.num_classes, dtype=np.int64)
        for value, index in self.mask_values.items():
            inverse[index] = value
        out = inverse[labels]
        return out.astype(np.uint8 if out.max(initial=0) <= 255 else np.uint16)


def binary_description(name: str, channels: int, foreground: str, **fields: Any) -> DatasetDescription:
    """A ``background``/``foreground`` description of masks stored as 0/255 (0/1 masks are read too)."""
    return DatasetDescription(name, channels, ("background", foreground), BINARY_0_255, **fields)


_DESCRIPTIONS: NameTable[DatasetDescription] = NameTable(
    "dataset description", "known: {known}, or 'auto' to infer one from the folder"
)


def register_description(description: DatasetDescription) -> DatasetDescription:
    """Make ``description`` known by its name (``data.dataset``, or a folder of that name)."""
    return _DESCRIPTIONS.register(description.name, description)


def list_descriptions() -> list[str]:
    return sorted(_DESCRIPTIONS)


def get_description(name: str) -> DatasetDescription:
    return _DESCRIPTIONS.pick(name)


def with_overrides(description: DatasetDescription, **changes: object) -> DatasetDescription:
    """A copy with some fields replaced (folder names from the config, for instance); None values are ignored."""
    return replace(description, **{k: v for k, v in changes.items() if v is not None})


def description_to_dict(d: DatasetDescription) -> dict:
    """The parts of a description a trained model needs to read new images and write masks (checkpoint-safe)."""
    return {
        "name": d.name,
        "channels": d.channels,
        "class_names": list(d.class_names),
        "mask_values": [[v, c] for v, c in d.mask_values.items()] if d.mask_values else None,
        "background": d.background,
        "instance_masks": d.instance_masks,
        "volume_pattern": d.volume_pattern,
    }


def description_from_dict(data: dict) -> DatasetDescription:
    values = data.get("mask_values")
    return DatasetDescription(
        name=data["name"],
        channels=int(data["channels"]),
        class_names=tuple(data["class_names"]),
        mask_values={int(v): int(c) for v, c in values} if values else None,
        background=data.get("background"),
        instance_masks=bool(data.get("instance_masks", False)),
        volume_pattern=data.get("volume_pattern"),
    )
