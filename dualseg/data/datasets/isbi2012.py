"""ISBI 2012 EM membranes (Arganda-Carreras et al. 2015): description, fetch-data catalogue entry, converter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dualseg.data.conversion import binary_0_255, converter, find_file
from dualseg.data.descriptions import BINARY_0_255, DatasetDescription, register_description
from dualseg.data.fetch_catalog import CatalogEntry, Resource, register_entry
from dualseg.data.io import write_png_atomic
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar

NAME = "isbi2012"

register_description(DatasetDescription(
    name=NAME,
    channels=1,
    class_names=("membrane", "cell_interior"),
    mask_values=BINARY_0_255,
    background=None,
    val_fraction=0.2,
    spacing_mm=4e-6,  # ssTEM sections imaged at 4 x 4 nm per pixel (the challenge's description)
    notes="ISBI 2012 EM membranes: 30 labelled 512x512 images; 255 = cell interior, 0 = membrane; "
    "no official labelled test set, so a seeded 24/6 train/val split.",
))

_BASE = "http://brainiac2.mit.edu/isbi_challenge/sites/default/files/"
# MD5s of the three challenge stacks as pinned by the ssTEM dataset class proposed for torchvision
# (torchvision/datasets/sstem.py in a torchvision fork, "Dataset for ISBI Challenge: Segmentation of neuronal
# structures in EM stacks", meta['train'|'test'][...]['md5']).
_MD5_SOURCE = "torchvision fork, datasets/sstem.py (ssTEM meta md5)"

register_entry(CatalogEntry(
    name=NAME,
    title="ISBI 2012 EM segmentation challenge, training stack (Arganda-Carreras et al. 2015)",
    homepage="http://brainiac2.mit.edu/isbi_challenge/",
    licence="public for research; cite Arganda-Carreras et al. 2015 and Cardona et al. 2010",
    size="~15 MB",
    resources=(
        Resource(_BASE + "train-volume.tif", "train-volume.tif",
                 md5="465461edbe0254630c4ec5577f1e7764", checksum_source=_MD5_SOURCE),
        Resource(_BASE + "train-labels.tif", "train-labels.tif",
                 md5="657fe6b728c6dd0152e295c6d800001d", checksum_source=_MD5_SOURCE),
        Resource(_BASE + "test-volume.tif", "test-volume.tif",
                 md5="9767660d7abe4e0ecbdd0061a16058ad", checksum_source=_MD5_SOURCE, optional=True),
    ),
    conversion="multipage TIFF stacks (30 x 512 x 512) -> one PNG per slice: images/N.png, masks/N.png "
    "(N = 0..29, 0/255, 255 = cell interior), test-volume.tif -> test_images_unlabeled/N.png. The original "
    "host may be offline: pass a mirror with --url FILE=URL (the MD5s are still checked) or the files "
    "with --from.",
))


@converter(NAME)
def convert(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """Multipage TIFF stacks -> one PNG per slice (images/N.png, masks/N.png 0/255; test -> test_images_unlabeled)."""
    import tifffile

    volume, labels = find_file(roots, "train-volume.tif"), find_file(roots, "train-labels.tif")
    if volume is None or labels is None:
        raise DualsegError("ISBI 2012: train-volume.tif and train-labels.tif not found in the download/--from")
    images, masks = tifffile.imread(volume), tifffile.imread(labels)
    if images.ndim != 3 or images.shape != masks.shape:
        raise DualsegError(f"ISBI 2012: expected two (N, H, W) stacks of one shape, got {images.shape}, {masks.shape}")
    for i in progress_bar(range(len(images)), desc="slices", enabled=progress):
        write_png_atomic(images[i], out / "images" / f"{i}.png")
        write_png_atomic(binary_0_255(masks[i]), out / "masks" / f"{i}.png")
    notes = [f"{len(images)} slices"]
    test = find_file(roots, "test-volume.tif")
    if test is not None:
        for i, image in enumerate(tifffile.imread(test)):
            write_png_atomic(image, out / "test_images_unlabeled" / f"{i}.png")
        notes.append("test stack -> test_images_unlabeled/")
    return notes
