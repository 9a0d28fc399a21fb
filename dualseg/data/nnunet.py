"""nnU-Net v2 raw datasets: read one as a dualseg dataset, and write dualseg's folder layout as one.

An nnU-Net v2 raw dataset (``nnUNet_raw/DatasetXXX_Name/``) holds ``dataset.json`` (``channel_names``, ``labels``,
``numTraining``, ``file_ending``), ``imagesTr/<case>_0000<ending>`` (one file per channel: ``_0000``, ``_0001``, ...),
``labelsTr/<case><ending>`` (class indices) and optionally ``imagesTs/``. For 2D natural images nnU-Net's
NaturalImage2DIO reads an RGB PNG as three channels from one ``_0000`` file; both forms are read here.
A folder with ``dataset.json`` and ``imagesTr/`` is read directly (``data.dataset: nnunet``, or ``auto``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dualseg.data.descriptions import DatasetDescription, resolve_description
from dualseg.data.io import read_image, read_mask, write_png_atomic
from dualseg.data.scan import FolderScan, Sample, scan_folder
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar
from dualseg.safety.outputs import writing_into

NNUNET = "nnunet"
DATASET_JSON = "dataset.json"


def is_nnunet_dataset(root: str | Path) -> bool:
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


def nnunet_description(root: str | Path) -> DatasetDescription:
    """Channels from ``channel_names``, class names from ``labels`` (by value); a ``dualseg`` block written by
    :func:`convert_to_nnunet` restores the original class names and the background convention."""
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
        name=NNUNET,
        channels=len(meta["channel_names"]),
        class_names=tuple(names),
        mask_values=mask_values,
        background=background,
        notes=f"nnU-Net v2 dataset {meta.get('name', Path(root).name)} (dataset.json)",
    )


def scan_nnunet(root: str | Path) -> FolderScan:
    """Pair ``imagesTr/<case>_<CCCC><ending>`` channel files with ``labelsTr/<case><ending>``; name every gap."""
    root = Path(root)
    meta = load_dataset_json(root)
    ending = meta["file_ending"]
    n_channels = len(meta["channel_names"])
    pattern = re.compile(rf"(.+)_(\d{{4}}){re.escape(ending)}$")
    cases: dict[str, dict[int, Path]] = {}
    scan = FolderScan()
    for path in sorted((root / "imagesTr").iterdir()):
        match = pattern.match(path.name)
        if match is None:
            if path.is_file() and not path.name.startswith("."):
                scan.problems.append(f"not an nnU-Net image name <case>_<0000>{ending}: {path}")
            continue
        cases.setdefault(match.group(1), {})[int(match.group(2))] = path
    if not cases:
        raise DualsegError(f"{root / 'imagesTr'} holds no <case>_0000{ending} files")
    labels_dir = root / "labelsTr"
    for case, channels in sorted(cases.items()):
        files = [channels.get(c) for c in range(max(channels) + 1)]
        single_rgb = len(channels) == 1 and n_channels == 3  # NaturalImage2DIO: one RGB file, three channels
        if None in files or (len(files) != n_channels and not single_rgb):
            scan.problems.append(
                f"case '{case}' has channel files {sorted(channels)} but dataset.json declares {n_channels} channel(s)"
            )
            continue
        label = labels_dir / f"{case}{ending}"
        if not label.is_file():
            scan.problems.append(f"image without label: {files[0]} (expected {label})")
            continue
        scan.samples.append(Sample(case, files[0], label, None, tuple(files[1:])))
    if labels_dir.is_dir():
        for label in sorted(labels_dir.glob(f"*{ending}")):
            if label.name[: -len(ending)] not in cases:
                scan.problems.append(f"label without image: {label}")
    if meta.get("numTraining") not in (None, len(cases)):
        scan.problems.append(f"dataset.json: numTraining={meta['numTraining']}, but imagesTr holds {len(cases)} cases")
    return scan


def _image_planes(image: np.ndarray) -> list[np.ndarray]:
    """What to write per case: one gray or RGB file (NaturalImage2DIO), else one file per channel."""
    c = image.shape[-1]
    if c == 4:  # RGBA: alpha dropped, as dualseg reads it
        image, c = image[..., :3], 3
    elif c == 2:  # gray + alpha
        image, c = image[..., :1], 1
    if c == 1:
        return [image[..., 0]]
    if c == 3:
        return [image]
    return [image[..., k] for k in range(c)]


def convert_to_nnunet(
    src: str | Path,
    dest: str | Path,
    dataset_id: int,
    name: str,
    dataset: str = "auto",
    progress: bool = True,
    keep_test: bool = True,
) -> Path:
    """Write a dualseg dataset folder as ``dest/DatasetXXX_<name>`` (nnU-Net v2 raw layout), atomically.

    Images become PNG (lossless; 8/16-bit kept; RGBA loses alpha): gray and RGB as one ``_0000.png`` (RGB read as
    three channels by NaturalImage2DIO), other channel counts as one file per channel. Masks become class indices
    (``labelsTr``) through the dataset description (0/255 -> 0/1, instance ids -> foreground). Labelled images go to
    ``imagesTr`` (nnU-Net makes its own folds), except a dataset's official test set (DRIVE's ``*_test``, ACDC's
    test patients), which goes to ``imagesTs``/``labelsTs`` so that it stays held out (``keep_test=False``: all to
    ``imagesTr``); FOV masks are not carried over. Class index 0 is named
    ``background`` as nnU-Net requires; the original names are kept in dataset.json's ``dualseg`` block.
    """
    if not 1 <= dataset_id <= 999:
        raise DualsegError(f"--dataset-id must be in 1..999 (nnU-Net's DatasetXXX), got {dataset_id}")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise DualsegError(f"--name '{name}' may only hold letters, digits, '_' and '-'")
    dest = Path(dest)
    taken = sorted(dest.glob(f"Dataset{dataset_id:03d}_*")) if dest.is_dir() else []
    if taken:
        raise DualsegError(f"{taken[0]} already uses dataset id {dataset_id}; choose another --dataset-id")
    with writing_into(dest, [src]):  # a failed conversion leaves no folder it created behind
        return _convert(Path(src), dest / f"Dataset{dataset_id:03d}_{name}", name, dataset, progress, keep_test)


def _convert(src: Path, target: Path, name: str, dataset: str, progress: bool, keep_test: bool) -> Path:
    dest = target.parent
    description = resolve_description(src, dataset)
    scan = scan_folder(src, description.image_dir, description.mask_dir)
    if scan.problems:
        raise DualsegError(f"{src} has problems ({'; '.join(scan.problems[:3])}); run 'dualseg check-data' first")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=dest))
    try:
        out = work / target.name
        n_channels = None
        stems = [s.stem for s in scan.samples]
        test = set(description.default_test(stems, Path(src))) if keep_test and description.default_test else set()
        for s in progress_bar(scan.samples, desc="convert-nnunet", enabled=progress, unit="pair"):
            images, labels_dir = ("imagesTs", "labelsTs") if s.stem in test else ("imagesTr", "labelsTr")
            image = read_image(s.image, s.extra_channels)
            if not np.issubdtype(image.dtype, np.integer):
                raise DualsegError(f"{s.image}: float images cannot be stored as nnU-Net PNGs; convert to 8/16-bit")
            planes = _image_planes(image)
            channels = planes[0].shape[-1] if len(planes) == 1 and planes[0].ndim == 3 else len(planes)
            if n_channels not in (None, channels):
                raise DualsegError(f"{s.image} has {channels} channel(s), earlier images {n_channels}; nnU-Net needs "
                                   "one channel count per dataset")
            n_channels = channels
            for k, plane in enumerate(planes):
                write_png_atomic(plane, out / images / f"{s.stem}_{k:04d}.png")
            labels = description.encode_mask(read_mask(s.mask), s.mask)
            if labels.shape != image.shape[:2]:
                raise DualsegError(f"size mismatch: {s.image} and {s.mask}; run 'dualseg check-data'")
            write_png_atomic(labels.astype(np.uint8 if description.num_classes <= 256 else np.uint16),
                             out / labels_dir / f"{s.stem}.png")
        channel_names = {"0": "R", "1": "G", "2": "B"} if n_channels == 3 else (
            {"0": "gray"} if n_channels == 1 else {str(k): f"channel_{k}" for k in range(n_channels or 0)})
        labels_json = {("background" if i == 0 else cls): i for i, cls in enumerate(description.class_names)}
        meta = {
            "name": name,
            "description": f"converted by dualseg convert-nnunet from {Path(src).name} ({description.name})",
            "channel_names": channel_names,
            "labels": labels_json,
            "numTraining": len(scan.samples) - len(test),
            "file_ending": ".png",
            "overwrite_image_reader_writer": "NaturalImage2DIO",
            "dualseg": {"class_names": list(description.class_names), "background": description.background},
        }
        (out / DATASET_JSON).write_text(json.dumps(meta, indent=2) + "\n")
        os.rename(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
