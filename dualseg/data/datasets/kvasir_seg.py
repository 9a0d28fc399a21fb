"""Kvasir-SEG polyps (Jha et al., MMM 2020): description, fetch-data catalogue entry, converter."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dualseg.data.conversion import binary_0_255, converter, ensure_folder, gray, image_files
from dualseg.data.descriptions import SPLIT_80_10_10, binary_description, register_description
from dualseg.data.fetch_catalog import CatalogEntry, Resource, register_entry
from dualseg.data.io import read_image, write_png_atomic
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar

NAME = "kvasir_seg"

register_description(binary_description(
    NAME, 3, "polyp",
    **SPLIT_80_10_10,
    notes="Kvasir-SEG polyps: 1,000 JPEG frames with 0/255 masks (binarised from JPEG by fetch-data); no "
    "official split, seeded 80/10/10.",
))

register_entry(CatalogEntry(
    name=NAME,
    title="Kvasir-SEG polyps (Jha et al., MMM 2020)",
    homepage="https://datasets.simula.no/kvasir-seg/",
    licence="research and education only; commercial use forbidden without permission; cite Jha et al. "
    "2020",
    size="~46 MB",
    aliases=("kvasir",),
    resources=(
        Resource("https://datasets.simula.no/downloads/kvasir-seg.zip", "kvasir-seg.zip",
                 sha256="03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
                 checksum_source="constantinpape/torch-em, torch_em/data/datasets/medical/kvasir.py"),
    ),
    conversion="Kvasir-SEG/images/*.jpg copied unchanged; Kvasir-SEG/masks/*.jpg (JPEG, compression noise "
    "around 0 and 255) -> masks/<id>.png, grey mean >= 128 -> 255, else 0.",
))


@converter(NAME)
def convert(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """images/*.jpg copied; JPEG masks -> PNG 0/255 (grey mean >= 128)."""
    folder = next((p.parent for root in roots for p in sorted(root.rglob("masks")) if (p.parent / "images").is_dir()),
                  None)
    if folder is None:
        raise DualsegError("Kvasir-SEG: no folder with images/ and masks/ found in the archive/--from")
    masks = {p.stem: p for p in image_files(folder / "masks")}
    count = 0
    for image in progress_bar(image_files(folder / "images"), desc="kvasir", enabled=progress):
        if image.stem in masks:
            shutil.copy2(image, ensure_folder(out / "images") / image.name)
            write_png_atomic(binary_0_255(gray(read_image(masks[image.stem]).astype(np.float32))),
                             out / "masks" / f"{image.stem}.png")
            count += 1
    return [f"{count} pairs"]
