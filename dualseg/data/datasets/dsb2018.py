"""2018 Data Science Bowl nuclei (Caicedo et al. 2019): description, fetch-data catalogue entry, converter."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dualseg.data.conversion import converter, ensure_folder, image_files
from dualseg.data.descriptions import SPLIT_80_10_10, binary_description, register_description
from dualseg.data.fetch_catalog import CatalogEntry, Resource, register_entry
from dualseg.data.io import read_mask, write_png_atomic
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar

NAME = "dsb2018"

register_description(binary_description(
    NAME, 3, "nucleus",
    **SPLIT_80_10_10,
    notes="2018 Data Science Bowl stage-1 test images with released masks (65); RGBA alpha dropped; "
    "instance ids in instance_masks/ (data.mask_dir=instance_masks with data.instance_masks=true reads them, "
    "reduced to semantic).",
))

register_entry(CatalogEntry(
    name=NAME,
    title="2018 Data Science Bowl nuclei, stage-1 training set with hand-corrected masks "
    "(Caicedo et al., Nature Methods 2019)",
    homepage="https://bbbc.broadinstitute.org/BBBC038",
    licence="BBBC038 is reported CC0 (verify); cite Caicedo et al. 2019",
    size="~80 MB",
    resources=(
        Resource("https://github.com/ibmua/data-science-bowl-2018-train-set/raw/master/train-hand.zip",
                 "train-hand.zip",
                 sha256="d218b8706cd7b9a2d7171268a6e99c7b0e94605af46521ff2ffd5a17708b1af6",
                 checksum_source="constantinpape/torch-em, torch_em/data/datasets/light_microscopy/dsb.py "
                 "(the hand-corrected stage1_train set recommended on the BBBC038 page)"),
    ),
    conversion="<id>/images/<id>.png copied unchanged (RGBA kept; alpha is dropped when read); the "
    "per-nucleus <id>/masks/*.png -> masks/<id>.png (union, 0/255) and instance_masks/<id>.png (16-bit, "
    "1..K in file-name order). Note: the shared ../shared/data/dsb2018 holds the 65 stage-1 *test* images "
    "instead.",
))


@converter(NAME)
def convert(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """<id>/images/<id>.png + <id>/masks/*.png -> images/, masks/ (union 0/255), instance_masks/ (16-bit ids)."""
    cases = sorted(
        p.parent.parent for root in roots for p in root.rglob("images/*.png")
        if p.stem == p.parent.parent.name and (p.parent.parent / "masks").is_dir()
    )
    if not cases:
        raise DualsegError("DSB 2018: no <id>/images/<id>.png with <id>/masks/ found in the archive/--from")
    for case in progress_bar(cases, desc="dsb2018", enabled=progress):
        shutil.copy2(case / "images" / f"{case.name}.png", ensure_folder(out / "images") / f"{case.name}.png")
        instances = None
        for k, nucleus in enumerate(image_files(case / "masks"), start=1):
            m = read_mask(nucleus) > 0
            instances = np.zeros(m.shape, np.uint16) if instances is None else instances
            instances[m] = k
        if instances is None:
            raise DualsegError(f"DSB 2018: {case / 'masks'} holds no nucleus masks")
        write_png_atomic(np.where(instances > 0, 255, 0).astype(np.uint8), out / "masks" / f"{case.name}.png")
        write_png_atomic(instances, out / "instance_masks" / f"{case.name}.png")
    return [f"{len(cases)} images"]
