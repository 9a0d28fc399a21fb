"""``dualseg convert-nnunet``: write a dualseg dataset folder as an nnU-Net v2 raw dataset (``DatasetXXX_Name``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dualseg.data.io import read_image, read_mask, write_png_atomic
from dualseg.data.layouts import scan_folder
from dualseg.data.layouts.nnunet import DATASET_JSON
from dualseg.data.resolve import resolve_description
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar
from dualseg.safety.outputs import writing_into


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
