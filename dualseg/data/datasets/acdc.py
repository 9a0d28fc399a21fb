"""ACDC cardiac cine-MRI (Bernard et al., IEEE TMI 2018): description, fetch-data catalogue entry, converter."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dualseg.data.conversion import converter
from dualseg.data.descriptions import DatasetDescription, register_description
from dualseg.data.fetch_catalog import CatalogEntry, Resource, register_entry
from dualseg.data.io import write_png_atomic
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar

NAME = "acdc"


def acdc_patient(stem: str) -> str:
    """The patient of a slice (``patient012_frame01_slice_3`` -> ``patient012``), so splits keep patients whole."""
    match = re.match(r"(patient\d+)_", stem)
    return match.group(1) if match else stem


def official_test(stems: Sequence[str], root: Path) -> list[str]:
    """The SSL4MIS 'val' patients of split.csv are the held-out evaluation set (its test patients are absent)."""
    split_file = root / "split.csv"
    if not split_file.is_file():
        raise DualsegError(f"{split_file} not found: the ACDC description reads its patient split from it")
    with open(split_file, newline="") as f:
        held_out = {row["stem"] for row in csv.DictReader(f) if row["split"] != "train"}
    return [s for s in stems if s in held_out]


register_description(DatasetDescription(
    name=NAME,
    channels=1,
    class_names=("background", "RV", "Myo", "LV"),
    group_key=acdc_patient,
    default_test=official_test,
    val_fraction=1 / 7,
    volume_pattern=r"^(patient\d+_frame\d+)_slice_\d+$",
    notes="ACDC cine-MRI slices (16-bit, value/65535), classes 0 bg, 1 RV, 2 Myo, 3 LV; split.csv's val "
    "patients are the held-out test set, validation = 10 of the 70 training patients (by patient).",
))

register_entry(CatalogEntry(
    name=NAME,
    title="ACDC cardiac cine-MRI (Bernard et al., IEEE TMI 2018)",
    homepage="https://humanheart-project.creatis.insa-lyon.fr/database/#collection/637218c173e9f0047faa00fb",
    licence="non-commercial scientific research only; cite Bernard et al. 2018",
    size="~2.3 GB",
    resources=(
        Resource("https://humanheart-project.creatis.insa-lyon.fr/database/api/v1/collection/"
                 "637218c173e9f0047faa00fb/download", "ACDC.zip",
                 sha256="2787e08b0d3525cbac710fc3bdf69ee7c5fd7446472e49db8bc78548802f6b5e",
                 checksum_source="constantinpape/torch-em, torch_em/data/datasets/medical/acdc.py"),
    ),
    conversion="database/{training,testing}/patientNNN/patientNNN_frameMM.nii.gz with its _gt -> 2D "
    "slices: images/patientNNN_frameMM_slice_K.png (K = 1.., 16-bit = round(v * 65535) of the volume "
    "min-max normalised to [0, 1], as in the SSL4MIS preprocessing), masks/...png (0 bg, 1 RV, 2 Myo, "
    "3 LV); split.csv: training patients 'train', testing patients 'test' (held out). If the portal asks "
    "for a login, download ACDC.zip in a browser and pass it with --from.",
))


@converter(NAME)
def convert(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """NIfTI ED/ES volumes -> 2D slices, volume min-max to [0, 1] stored as 16-bit PNG; split.csv by folder."""
    import nibabel as nib

    labels = sorted(p for root in roots for p in root.rglob("patient*_frame*_gt.nii.gz"))
    if not labels:
        raise DualsegError("ACDC: no patientNNN_frameMM_gt.nii.gz found in the archive/--from")
    rows = []
    for gt_path in progress_bar(labels, desc="acdc", enabled=progress):
        image_path = gt_path.with_name(gt_path.name.replace("_gt.nii.gz", ".nii.gz"))
        if not image_path.is_file():
            raise DualsegError(f"ACDC: {gt_path} has no image volume {image_path.name}")
        volume = np.asarray(nib.load(image_path).dataobj, dtype=np.float32)
        label = np.asarray(nib.load(gt_path).dataobj).round().astype(np.uint8)
        low, high = float(volume.min()), float(volume.max())
        volume = (volume - low) / max(high - low, 1e-8)
        split = "test" if "testing" in gt_path.parts else "train"
        case = image_path.name[: -len(".nii.gz")]
        for k in range(volume.shape[2]):  # nibabel (X, Y, Z): a slice transposed is (rows = Y, cols = X)
            stem = f"{case}_slice_{k + 1}"
            write_png_atomic(np.round(volume[:, :, k].T * 65535).astype(np.uint16), out / "images" / f"{stem}.png")
            write_png_atomic(label[:, :, k].T.copy(), out / "masks" / f"{stem}.png")
            rows.append(f"{stem},{split}")
    (out / "split.csv").write_text("stem,split\n" + "\n".join(rows) + "\n")
    return [f"{len(labels)} volumes, {len(rows)} slices"]
