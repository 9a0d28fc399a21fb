"""Dataset descriptions: what each folder layout holds (channels, classes, value encoding, default split).

A description is looked up by name (``data.dataset`` in the config) or by the folder's name; unknown folders get
one inferred from their files (:func:`infer_description`). Add a dataset by calling :func:`register_description`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dualseg.errors import DualsegError, did_you_mean

BINARY_0_255 = {0: 0, 255: 1}


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


_DESCRIPTIONS: dict[str, DatasetDescription] = {}


def register_description(description: DatasetDescription) -> DatasetDescription:
    _DESCRIPTIONS[description.name] = description
    return description


def list_descriptions() -> list[str]:
    return sorted(_DESCRIPTIONS)


def get_description(name: str) -> DatasetDescription:
    if name not in _DESCRIPTIONS:
        raise DualsegError(
            f"unknown dataset description '{name}'{did_you_mean(name, _DESCRIPTIONS)}; known: "
            f"{', '.join(list_descriptions())}, or 'auto' to infer one from the folder"
        )
    return _DESCRIPTIONS[name]


def resolve_description(root: str | Path, name: str = "auto") -> DatasetDescription:
    """The named description, the one registered under the folder's name, or one inferred from the files."""
    from dualseg.data.nnunet import NNUNET, is_nnunet_dataset, nnunet_description

    if name == NNUNET or (name == "auto" and is_nnunet_dataset(root)):
        return nnunet_description(root)
    if name != "auto":
        return get_description(name)
    folder = Path(root).name
    if folder in _DESCRIPTIONS:
        return _DESCRIPTIONS[folder]
    return infer_description(root)


def infer_description(root: str | Path, max_files: int = 64) -> DatasetDescription:
    """Guess channels and classes from a sample of files: 0/255 masks are binary, small integers are classes."""
    from dualseg.data.io import read_image, read_mask
    from dualseg.data.scan import scan_folder

    scan = scan_folder(root, image_dir="images", mask_dir="masks")
    if not scan.samples:
        found = f": {'; '.join(scan.problems[:3])}" if scan.problems else ""
        raise DualsegError(
            f"no image/mask pairs found under {root}{found}; expected images/ and masks/ with matching stems"
        )
    sample = scan.samples[:: max(1, len(scan.samples) // max_files)][:max_files]
    channels = 1
    values: set[int] = set()
    binary_masks = 0  # masks holding only 0/255 or only 0/1
    for s in sample:
        try:
            img, mask = read_image(s.image, s.extra_channels), read_mask(s.mask)
        except DualsegError:
            continue  # unreadable files are reported by check-data / refused by the dataset, not guessed from
        channels = max(channels, 3 if img.shape[-1] >= 3 else 1)
        mask_values = set(np.unique(mask).tolist())
        values |= mask_values
        binary_masks += mask_values <= {0, 255} or mask_values <= {0, 1}
    if values <= {0, 255}:
        return DatasetDescription(Path(root).name, channels, ("background", "foreground"), {0: 0, 255: 1})
    if values <= {0, 1}:
        return DatasetDescription(Path(root).name, channels, ("background", "foreground"))
    if values <= {0, 1, 255} or (255 in values and binary_masks > len(sample) / 2):
        # 0/255 masks, possibly mixed with 0/1 ones (both read as binary); a few masks with other values are
        # then reported by name as outside the declared classes instead of turning the whole folder into classes
        return DatasetDescription(Path(root).name, channels, ("background", "foreground"), {0: 0, 255: 1})
    n = int(max(values)) + 1
    if n > 64:
        raise DualsegError(
            f"{root}: masks hold values up to {n - 1}, too many for class indices; instance masks? "
            "set data.instance_masks=true (reduced to one foreground class), or convert the masks"
        )
    return DatasetDescription(Path(root).name, channels, ("background", *[f"class_{i}" for i in range(1, n)]))


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


# --- the datasets of ../shared/data (see each folder's DATASET.md) -------------------------------------------------

register_description(
    DatasetDescription(
        name="isbi2012",
        channels=1,
        class_names=("membrane", "cell_interior"),
        mask_values=BINARY_0_255,
        background=None,
        val_fraction=0.2,
        notes="ISBI 2012 EM membranes: 30 labelled 512x512 images; 255 = cell interior, 0 = membrane; "
        "no official labelled test set, so a seeded 24/6 train/val split.",
    )
)


def _drive_test(stems: Sequence[str], root: Path) -> list[str]:
    return [s for s in stems if s.endswith("_test")]


register_description(
    DatasetDescription(
        name="drive",
        channels=3,
        class_names=("background", "vessel"),
        mask_values=BINARY_0_255,
        fov_dir="fov_masks",
        default_test=_drive_test,
        val_fraction=0.2,
        notes="DRIVE retinal vessels: official split 20 *_training / 20 *_test (held out); validation carved "
        "from training; metrics inside the field-of-view masks.",
    )
)

# Frame-number ranges of the 29 video sequences (official CVC-ClinicDB README): last frame of each sequence.
_CVC_SEQUENCE_ENDS = (25, 50, 67, 78, 103, 126, 151, 177, 199, 205, 227, 252, 276, 297, 317, 342, 363, 383, 408, 428,
                      447, 466, 478, 503, 528, 546, 571, 591, 612)


def cvc_sequence(stem: str) -> str:
    """The video sequence (1..29) of a CVC-ClinicDB frame, so frames of one sequence stay in one split."""
    match = re.fullmatch(r"\d+", stem)
    if not match:
        return stem
    frame = int(stem)
    for seq, last in enumerate(_CVC_SEQUENCE_ENDS, start=1):
        if frame <= last:
            return f"seq{seq:02d}"
    return stem


register_description(
    DatasetDescription(
        name="cvc_clinicdb",
        channels=3,
        class_names=("background", "polyp"),
        mask_values=BINARY_0_255,
        group_key=cvc_sequence,
        test_fraction=0.1,
        val_fraction=0.1 / 0.9,
        notes="CVC-ClinicDB polyps: 612 frames of 29 video sequences; 80/10/10 split by sequence.",
    )
)

register_description(
    DatasetDescription(
        name="dsb2018",
        channels=3,
        class_names=("background", "nucleus"),
        mask_values=BINARY_0_255,
        test_fraction=0.1,
        val_fraction=0.1 / 0.9,
        notes="2018 Data Science Bowl stage-1 test images with released masks (65); RGBA alpha dropped; "
        "instance ids in instance_masks/ (data.mask_dir=instance_masks with data.instance_masks=true reads them, "
        "reduced to semantic).",
    )
)


def acdc_patient(stem: str) -> str:
    match = re.match(r"(patient\d+)_", stem)
    return match.group(1) if match else stem


def _acdc_test(stems: Sequence[str], root: Path) -> list[str]:
    """The SSL4MIS 'val' patients of split.csv are the held-out evaluation set (its test patients are absent)."""
    split_file = root / "split.csv"
    if not split_file.is_file():
        raise DualsegError(f"{split_file} not found: the ACDC description reads its patient split from it")
    with open(split_file, newline="") as f:
        held_out = {row["stem"] for row in csv.DictReader(f) if row["split"] != "train"}
    return [s for s in stems if s in held_out]


register_description(
    DatasetDescription(
        name="acdc",
        channels=1,
        class_names=("background", "RV", "Myo", "LV"),
        group_key=acdc_patient,
        default_test=_acdc_test,
        val_fraction=1 / 7,
        volume_pattern=r"^(patient\d+_frame\d+)_slice_\d+$",
        notes="ACDC cine-MRI slices (16-bit, value/65535), classes 0 bg, 1 RV, 2 Myo, 3 LV; split.csv's val "
        "patients are the held-out test set, validation = 10 of the 70 training patients (by patient).",
    )
)

register_description(
    DatasetDescription(
        name="kvasir_seg",
        channels=3,
        class_names=("background", "polyp"),
        mask_values=BINARY_0_255,
        test_fraction=0.1,
        val_fraction=0.1 / 0.9,
        notes="Kvasir-SEG polyps: 1,000 JPEG frames with 0/255 masks (binarised from JPEG by fetch-data); no "
        "official split, seeded 80/10/10.",
    )
)
