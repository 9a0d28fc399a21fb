"""On-disk dataset layouts and the one dispatcher that tells them apart.

Each layout module has ``NAME`` and the same three functions: ``detect(root) -> bool``, ``describe(root)`` (the
:class:`~dualseg.data.descriptions.DatasetDescription` the layout itself states, or ``None``) and
``scan(root, image_dir, mask_dir, fov_dir)`` (a :class:`~dualseg.data.scan.FolderScan`). :data:`LAYOUTS` lists them
in the order they are tried: nnU-Net v2 raw (``dataset.json`` + ``imagesTr/``), then dualseg's ``images/`` +
``masks/`` folders.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from dualseg.data.descriptions import DatasetDescription
from dualseg.data.layouts import folder, nnunet
from dualseg.data.scan import FolderScan
from dualseg.errors import DualsegError

LAYOUTS: tuple[ModuleType, ...] = (nnunet, folder)


def find_layout(root: str | Path) -> ModuleType | None:
    """The first layout whose ``detect`` holds for ``root``, or ``None``."""
    return next((layout for layout in LAYOUTS if layout.detect(Path(root))), None)


def _existing_folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DualsegError(f"dataset folder not found: {root}; set data.root (or --data) to an existing folder")
    return root


def detect_layout(root: str | Path) -> ModuleType:
    """The layout of ``root``; a folder in none of them raises, naming what a dataset folder holds."""
    root = _existing_folder(root)
    layout = find_layout(root)
    if layout is None:
        raise DualsegError(
            f"no '{folder.IMAGE_DIR}/' folder in {root}; a dataset folder holds images/ and masks/ (or, as an "
            f"nnU-Net v2 raw dataset, {nnunet.DATASET_JSON} and imagesTr/)"
        )
    return layout


def describe_layout(root: str | Path) -> DatasetDescription | None:
    """What the layout of ``root`` states about its classes (nnU-Net's dataset.json), or ``None``."""
    layout = find_layout(root)
    return layout.describe(Path(root)) if layout is not None else None


def scan_folder(
    root: str | Path,
    image_dir: str = folder.IMAGE_DIR,
    mask_dir: str | None = "masks",
    fov_dir: str | None = None,
) -> FolderScan:
    """The cases of a dataset folder and every layout problem, by the folder's layout; folder names other than
    ``images`` (``data.image_dir``) always mean the folder layout."""
    root = _existing_folder(root)
    layout = detect_layout(root) if image_dir == folder.IMAGE_DIR else folder
    return layout.scan(root, image_dir, mask_dir, fov_dir)
