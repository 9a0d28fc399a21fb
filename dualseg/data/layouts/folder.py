"""The folder layout (dualseg's own): ``images/<stem>.*`` paired with ``masks/<stem>.*`` (and ``fov_masks/``)."""

from __future__ import annotations

import os
from pathlib import Path

from dualseg.data.descriptions import DatasetDescription
from dualseg.data.io import IMAGE_EXTENSIONS
from dualseg.data.scan import FolderScan, Sample
from dualseg.errors import DualsegError

NAME = "folder"
IMAGE_DIR = "images"


def detect(root: Path) -> bool:
    """A folder holding ``images/``."""
    return (Path(root) / IMAGE_DIR).is_dir()


def describe(root: Path) -> DatasetDescription | None:
    """Nothing: the folder layout states no classes (a registered name or the files themselves do)."""
    return None


def _index(folder: Path, problems: list[str], broken: set[str] | None = None) -> dict[str, Path]:
    """Image files of ``folder`` by stem; a dangling symbolic link is a problem of its own (its stem goes to
    ``broken``, so that its partner is not reported as an orphan as well)."""
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_symlink() and not path.exists():
            problems.append(f"broken symbolic link: {path} -> {os.readlink(path)}; fix or remove the link")
            if broken is not None:
                broken.add(path.stem)
            continue
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in by_stem:
            problems.append(f"duplicate stem '{path.stem}': {by_stem[path.stem].name} and {path.name} in {folder}")
            continue
        by_stem[path.stem] = path
    return by_stem


def scan(
    root: Path,
    image_dir: str = IMAGE_DIR,
    mask_dir: str | None = "masks",
    fov_dir: str | None = None,
) -> FolderScan:
    """Pair ``root/image_dir/<stem>.*`` with ``root/mask_dir/<stem>.*`` (and the FOV mask when configured)."""
    image_folder = root / image_dir
    if not image_folder.is_dir():
        raise DualsegError(f"no '{image_dir}/' folder in {root}; a dataset folder holds images/ and masks/")
    found = FolderScan()
    broken: set[str] = set()
    images = _index(image_folder, found.problems, broken)
    if not images:
        raise DualsegError(f"{image_folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    masks: dict[str, Path] = {}
    if mask_dir is not None:
        mask_folder = root / mask_dir
        if not mask_folder.is_dir():
            raise DualsegError(f"no '{mask_dir}/' folder in {root}; a dataset folder holds images/ and masks/")
        masks = _index(mask_folder, found.problems, broken)
        for stem in sorted(set(masks) - set(images) - broken):
            found.problems.append(f"mask without image: {masks[stem]}")
    fovs = _index(root / fov_dir, found.problems) if fov_dir and (root / fov_dir).is_dir() else {}
    for stem, image in images.items():
        if mask_dir is not None and stem not in masks:
            if stem not in broken:
                found.problems.append(f"image without mask: {image}")
            continue
        found.samples.append(Sample(stem, image, masks.get(stem), fovs.get(stem)))
    return found
