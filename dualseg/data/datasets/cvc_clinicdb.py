"""CVC-ClinicDB colonoscopy polyps (Bernal et al., CMIG 2015): description, fetch-data catalogue entry, converter."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from dualseg.data.conversion import binary_0_255, converter, gray, image_files
from dualseg.data.descriptions import SPLIT_80_10_10, binary_description, register_description
from dualseg.data.fetch_catalog import CatalogEntry, register_entry
from dualseg.data.io import read_image, write_png_atomic
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar

NAME = "cvc_clinicdb"

# Frame-number ranges of the 29 video sequences (official CVC-ClinicDB README): last frame of each sequence.
_SEQUENCE_ENDS = (25, 50, 67, 78, 103, 126, 151, 177, 199, 205, 227, 252, 276, 297, 317, 342, 363, 383, 408, 428,
                  447, 466, 478, 503, 528, 546, 571, 591, 612)


def cvc_sequence(stem: str) -> str:
    """The video sequence (1..29) of a CVC-ClinicDB frame, so frames of one sequence stay in one split."""
    match = re.fullmatch(r"\d+", stem)
    if not match:
        return stem
    frame = int(stem)
    for seq, last in enumerate(_SEQUENCE_ENDS, start=1):
        if frame <= last:
            return f"seq{seq:02d}"
    return stem


register_description(binary_description(
    NAME, 3, "polyp",
    group_key=cvc_sequence,
    **SPLIT_80_10_10,
    notes="CVC-ClinicDB polyps: 612 frames of 29 video sequences; 80/10/10 split by sequence.",
))

register_entry(CatalogEntry(
    name=NAME,
    title="CVC-ClinicDB colonoscopy polyps (Bernal et al., CMIG 2015)",
    homepage="https://polyp.grand-challenge.org/CVCClinicDB/",
    licence="research use; cite Bernal et al. 2015 (no open licence)",
    size="~60 MB",
    registration="no direct archive with a published checksum is known (the official link on "
    "https://polyp.grand-challenge.org/CVCClinicDB/ serves a RAR archive); download and unpack it, then "
    "run: dualseg fetch-data cvc_clinicdb --from CVC-ClinicDB/ --dest DIR",
    conversion="'Original/' + 'Ground Truth/' (or 'images/' + 'masks/', TIFF or PNG) -> images/N.png "
    "(lossless; 3-sample TIFFs tagged BlackIsZero are read with tifffile) and masks/N.png binarised at "
    ">= 128 to 0/255. Folders whose roles are swapped (1-channel files in the image folder, RGB files in "
    "the mask folder, as in some mirrors) are detected per pair and swapped back.",
))


# the image and mask folder names of the known releases
_FOLDERS = (("Original", "Ground Truth"), ("images", "masks"))


@converter(NAME)
def convert(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """'Original'/'Ground Truth' (or images/masks) -> images/N.png + masks/N.png (0/255), un-swapping swapped pairs."""
    pair = None
    for root in roots:
        for image_name, mask_name in _FOLDERS:
            for folder in [root, *sorted(p for p in root.rglob(image_name) if p.is_dir())]:
                base = folder if folder.name != image_name else folder.parent
                if (base / image_name).is_dir() and (base / mask_name).is_dir():
                    pair = (base / image_name, base / mask_name)
                    break
            if pair:
                break
        if pair:
            break
    if pair is None:
        raise DualsegError("CVC-ClinicDB: no 'Original/' + 'Ground Truth/' (or images/ + masks/) folders in --from")
    masks = {p.stem: p for p in image_files(pair[1])}
    swapped = 0
    for image_path in progress_bar(image_files(pair[0]), desc="cvc", enabled=progress):
        if image_path.stem not in masks:
            continue
        image, mask = read_image(image_path), read_image(masks[image_path.stem])
        if image.shape[-1] == 1 and mask.shape[-1] >= 3:  # this mirror's folders hold each other's files
            image, mask = mask, image
            swapped += 1
        write_png_atomic(image[..., :3] if image.shape[-1] >= 3 else image[..., 0], out / "images" /
                         f"{image_path.stem}.png")
        write_png_atomic(binary_0_255(gray(mask[..., :3] if mask.shape[-1] >= 3 else mask[..., 0])),
                         out / "masks" / f"{image_path.stem}.png")
    return [f"{len(masks)} pairs"] + ([f"{swapped} swapped image/mask pairs put back"] if swapped else [])
