"""A dataset folder's description: the named one, the one its layout states (nnU-Net's dataset.json), the one
registered under the folder's name, or one inferred from its files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualseg.data.descriptions import BINARY_0_255, DatasetDescription, get_description, list_descriptions
from dualseg.data.io import read_image, read_mask
from dualseg.data.layouts import describe_layout, nnunet, scan_folder
from dualseg.errors import DualsegError


def resolve_description(root: str | Path, name: str = "auto") -> DatasetDescription:
    """The description ``name`` (``auto``: what the layout states, else the folder's name, else inferred)."""
    if name == nnunet.NAME:
        return nnunet.describe(Path(root))
    if name != "auto":
        return get_description(name)
    stated = describe_layout(root)
    if stated is not None:
        return stated
    if Path(root).name in list_descriptions():
        return get_description(Path(root).name)
    return infer_description(root)


def infer_description(root: str | Path, max_files: int = 64) -> DatasetDescription:
    """Guess channels and classes from a sample of files: 0/255 masks are binary, small integers are classes."""
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
        return DatasetDescription(Path(root).name, channels, ("background", "foreground"), BINARY_0_255)
    if values <= {0, 1}:
        return DatasetDescription(Path(root).name, channels, ("background", "foreground"))
    if values <= {0, 1, 255} or (255 in values and binary_masks > len(sample) / 2):
        # 0/255 masks, possibly mixed with 0/1 ones (both read as binary); a few masks with other values are
        # then reported by name as outside the declared classes instead of turning the whole folder into classes
        return DatasetDescription(Path(root).name, channels, ("background", "foreground"), BINARY_0_255)
    n = int(max(values)) + 1
    if n > 64:
        raise DualsegError(
            f"{root}: masks hold values up to {n - 1}, too many for class indices; instance masks? "
            "set data.instance_masks=true (reduced to one foreground class), or convert the masks"
        )
    return DatasetDescription(Path(root).name, channels, ("background", *[f"class_{i}" for i in range(1, n)]))

