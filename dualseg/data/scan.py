"""Find image/mask pairs in a dataset folder and name every layout problem (missing partner, duplicate stem)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dualseg.data.io import IMAGE_EXTENSIONS
from dualseg.errors import DualsegError


@dataclass(frozen=True)
class Sample:
    """One case: its stem and the paths of its image, mask (if any) and field-of-view mask (if any)."""

    stem: str
    image: Path
    mask: Path | None = None
    fov: Path | None = None
    extra_channels: tuple[Path, ...] = ()  # further channel files stacked after ``image`` (nnU-Net _0001, ...)


@dataclass
class FolderScan:
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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


def scan_folder(
    root: str | Path,
    image_dir: str = "images",
    mask_dir: str | None = "masks",
    fov_dir: str | None = None,
) -> FolderScan:
    """Pair ``root/image_dir/<stem>.*`` with ``root/mask_dir/<stem>.*`` (and the FOV mask when configured)."""
    root = Path(root)
    if not root.is_dir():
        raise DualsegError(f"dataset folder not found: {root}; set data.root (or --data) to an existing folder")
    image_folder = root / image_dir
    if image_dir == "images" and not image_folder.is_dir():
        from dualseg.data.nnunet import is_nnunet_dataset, scan_nnunet

        if is_nnunet_dataset(root):
            return scan_nnunet(root)
    if not image_folder.is_dir():
        raise DualsegError(f"no '{image_dir}/' folder in {root}; a dataset folder holds images/ and masks/")
    scan = FolderScan()
    broken: set[str] = set()
    images = _index(image_folder, scan.problems, broken)
    if not images:
        raise DualsegError(f"{image_folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    masks: dict[str, Path] = {}
    if mask_dir is not None:
        mask_folder = root / mask_dir
        if not mask_folder.is_dir():
            raise DualsegError(f"no '{mask_dir}/' folder in {root}; a dataset folder holds images/ and masks/")
        masks = _index(mask_folder, scan.problems, broken)
        for stem in sorted(set(masks) - set(images) - broken):
            scan.problems.append(f"mask without image: {masks[stem]}")
    fovs = _index(root / fov_dir, scan.problems) if fov_dir and (root / fov_dir).is_dir() else {}
    for stem, image in images.items():
        if mask_dir is not None and stem not in masks:
            if stem not in broken:
                scan.problems.append(f"image without mask: {image}")
            continue
        scan.samples.append(Sample(stem, image, masks.get(stem), fovs.get(stem)))
    return scan
