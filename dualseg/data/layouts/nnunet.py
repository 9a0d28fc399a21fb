"""The nnU-Net v2 raw layout, read as a dualseg dataset (``dualseg convert-nnunet`` writes one: ``convert_nnunet``).

An nnU-Net v2 raw dataset (``nnUNet_raw/DatasetXXX_Name/``) holds ``dataset.json`` (``channel_names``, ``labels``,
``numTraining``, ``file_ending``), ``imagesTr/<case>_0000<ending>`` (one file per channel: ``_0000``, ``_0001``, ...),
``labelsTr/<case><ending>`` (class indices) and optionally ``imagesTs/``. For 2D natural images nnU-Net's
NaturalImage2DIO reads an RGB PNG as three channels from one ``_0000`` file; both forms are read here.
A folder with ``dataset.json`` and ``imagesTr/`` is read directly (``data.dataset: nnunet``, or ``auto``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dualseg.data.descriptions import DatasetDescription
from dualseg.data.scan import FolderScan, Sample
from dualseg.errors import DualsegError

NAME = "nnunet"
DATASET_JSON = "dataset.json"


def detect(root: Path) -> bool:
    """A folder holding ``dataset.json`` and ``imagesTr/``."""
    root = Path(root)
    return (root / DATASET_JSON).is_file() and (root / "imagesTr").is_dir()


def load_dataset_json(root: str | Path) -> dict:
    """``dataset.json`` with the keys nnU-Net v2 requires (``channel_names``, ``labels``, ``file_ending``)."""
    path = Path(root) / DATASET_JSON
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DualsegError(f"{path} not found; an nnU-Net dataset folder holds dataset.json and imagesTr/") from e
    except json.JSONDecodeError as e:
        raise DualsegError(f"{path} is not valid JSON ({e})") from e
    missing = [k for k in ("channel_names", "labels", "file_ending") if k not in meta]
    if missing:
        raise DualsegError(f"{path} lacks {', '.join(missing)}; nnU-Net v2 dataset.json needs them")
    if any(not isinstance(v, int) for v in meta["labels"].values()):
        raise DualsegError(f"{path}: region-based labels (lists) are not supported; give each label one integer")
    return meta


def describe(root: Path) -> DatasetDescription:
    """Channels from ``channel_names``, class names from ``labels`` (by value); a ``dualseg`` block written by
    ``dualseg convert-nnunet`` restores the original class names and the background convention."""
    meta = load_dataset_json(root)
    by_value = sorted(meta["labels"].items(), key=lambda kv: kv[1])
    values = [v for _, v in by_value]
    names = [n for n, _ in by_value]
    extra = meta.get("dualseg", {})
    if "class_names" in extra and len(extra["class_names"]) == len(names):
        names = list(extra["class_names"])
    mask_values = None if values == list(range(len(values))) else {v: i for i, v in enumerate(values)}
    background = extra["background"] if "background" in extra else meta["labels"].get("background", 0)
    return DatasetDescription(
        name=NAME,
        channels=len(meta["channel_names"]),
        class_names=tuple(names),
        mask_values=mask_values,
        background=background,
        notes=f"nnU-Net v2 dataset {meta.get('name', Path(root).name)} (dataset.json)",
    )


def scan(root: Path, image_dir: str = "images", mask_dir: str | None = "masks", fov_dir: str | None = None
         ) -> FolderScan:
    """Pair ``imagesTr/<case>_<CCCC><ending>`` channel files with ``labelsTr/<case><ending>``; name every gap.

    nnU-Net names its folders itself: the folder layout's ``image_dir``, ``mask_dir`` and ``fov_dir`` do not apply."""
    root = Path(root)
    meta = load_dataset_json(root)
    ending = meta["file_ending"]
    n_channels = len(meta["channel_names"])
    pattern = re.compile(rf"(.+)_(\d{{4}}){re.escape(ending)}$")
    cases: dict[str, dict[int, Path]] = {}
    found = FolderScan()
    for path in sorted((root / "imagesTr").iterdir()):
        match = pattern.match(path.name)
        if match is None:
            if path.is_file() and not path.name.startswith("."):
                found.problems.append(f"not an nnU-Net image name <case>_<0000>{ending}: {path}")
            continue
        cases.setdefault(match.group(1), {})[int(match.group(2))] = path
    if not cases:
        raise DualsegError(f"{root / 'imagesTr'} holds no <case>_0000{ending} files")
    labels_dir = root / "labelsTr"
    for case, channels in sorted(cases.items()):
        files = [channels.get(c) for c in range(max(channels) + 1)]
        single_rgb = len(channels) == 1 and n_channels == 3  # NaturalImage2DIO: one RGB file, three channels
        if None in files or (len(files) != n_channels and not single_rgb):
            found.problems.append(
                f"case '{case}' has channel files {sorted(channels)} but dataset.json declares {n_channels} channel(s)"
            )
            continue
        label = labels_dir / f"{case}{ending}"
        if not label.is_file():
            found.problems.append(f"image without label: {files[0]} (expected {label})")
            continue
        found.samples.append(Sample(case, files[0], label, None, tuple(files[1:])))
    if labels_dir.is_dir():
        for label in sorted(labels_dir.glob(f"*{ending}")):
            if label.name[: -len(ending)] not in cases:
                found.problems.append(f"label without image: {label}")
    if meta.get("numTraining") not in (None, len(cases)):
        found.problems.append(f"dataset.json: numTraining={meta['numTraining']}, but imagesTr holds {len(cases)} cases")
    return found
