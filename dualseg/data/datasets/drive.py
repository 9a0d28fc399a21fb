"""DRIVE retinal vessels (Staal et al., IEEE TMI 2004): description, fetch-data catalogue entry, converter."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from dualseg.data.conversion import binary_0_255, converter, displayed_gray, ensure_folder
from dualseg.data.descriptions import binary_description, register_description
from dualseg.data.fetch_catalog import CatalogEntry, register_entry
from dualseg.data.io import write_png_atomic
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar

NAME = "drive"
# other fundus cameras image vessels 0.6-1.7x as wide in pixels as DRIVE's 565x584 photographs
FUNDUS_SCALE_RANGE = (0.6, 1.7)


def official_test(stems: Sequence[str], root: Path) -> list[str]:
    """The 20 ``*_test`` images, held out."""
    return [s for s in stems if s.endswith("_test")]


register_description(binary_description(
    NAME, 3, "vessel",
    fov_dir="fov_masks",
    scale_proxy="fov_diameter",
    default_test=official_test,
    val_fraction=0.2,
    scale_range=FUNDUS_SCALE_RANGE,
    notes="DRIVE retinal vessels: official split 20 *_training / 20 *_test (held out); validation carved "
    "from training; metrics inside the field-of-view masks.",
))

register_entry(CatalogEntry(
    name=NAME,
    title="DRIVE retinal vessels (Staal et al., IEEE TMI 2004)",
    homepage="https://drive.grand-challenge.org/",
    licence="free for research after registration; cite Staal et al. 2004",
    size="~30 MB",
    registration="register at https://drive.grand-challenge.org/ and download the data (DRIVE.zip, or "
    "training.zip and test.zip); then run: dualseg fetch-data drive --from DRIVE.zip --dest DIR "
    "(archives or extracted folders with training/ and test/ holding images/, 1st_manual/, mask/)",
    conversion="training/ and test/ folders merged: images/<id>.tif unchanged (<id> = 21_training, "
    "01_test, ...); 1st_manual/*_manual1.gif -> masks/<id>.png (0/255); mask/*_mask.gif -> "
    "fov_masks/<id>.png (0/255); 2nd_manual -> masks_2nd_observer/<id>.png; test images without a "
    "manual segmentation (grand-challenge release) -> test_images_unlabeled/.",
))


@converter(NAME)
def convert(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """DRIVE training/ + test/ -> images/<id>.tif, masks/<id>.png, fov_masks/<id>.png (see the catalogue)."""
    tifs = sorted(p for root in roots for p in root.rglob("images/*.tif") if re.match(r"\d+_(training|test)$", p.stem))
    if not tifs:
        raise DualsegError("DRIVE: no images/<NN>_training.tif or images/<NN>_test.tif found in --from")
    unlabeled = 0
    for image in progress_bar(tifs, desc="drive", enabled=progress):
        split_dir, number = image.parent.parent, image.stem.split("_")[0]
        manual = split_dir / "1st_manual" / f"{number}_manual1.gif"
        fov = split_dir / "mask" / f"{image.stem}_mask.gif"
        second = split_dir / "2nd_manual" / f"{number}_manual2.gif"
        if not manual.is_file():
            shutil.copy2(image, ensure_folder(out / "test_images_unlabeled") / image.name)
            unlabeled += 1
            continue
        shutil.copy2(image, ensure_folder(out / "images") / image.name)
        write_png_atomic(binary_0_255(displayed_gray(manual)), out / "masks" / f"{image.stem}.png")
        if fov.is_file():
            write_png_atomic(binary_0_255(displayed_gray(fov)), out / "fov_masks" / f"{image.stem}.png")
        if second.is_file():  # its palette decodes to 3/253: thresholded like the others
            write_png_atomic(binary_0_255(displayed_gray(second)), out / "masks_2nd_observer" / f"{image.stem}.png")
    return [f"{len(tifs) - unlabeled} labelled images"] + ([f"{unlabeled} without labels"] if unlabeled else [])
