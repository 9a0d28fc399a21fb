"""The inputs of a prediction: one image or NIfTI file, or the images and volumes of a folder."""

from __future__ import annotations

from pathlib import Path

from dualseg.data.io import IMAGE_EXTENSIONS
from dualseg.errors import DualsegError
from dualseg.inference.volumes import NIFTI_SUFFIXES, is_nifti, nifti_stem


def _supported(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS or is_nifti(path)


def list_inputs(path: str | Path) -> list[Path]:
    """One image or NIfTI file, or the images and NIfTI volumes of a folder (sorted)."""
    path = Path(path)
    kinds = f"{', '.join(IMAGE_EXTENSIONS)}, {', '.join(NIFTI_SUFFIXES)}"
    if path.is_file():
        if not _supported(path):
            raise DualsegError(f"unsupported input file type: {path.name}; give an image or NIfTI volume ({kinds})")
        return [path]
    if not path.is_dir():
        raise DualsegError(f"input not found: {path}; give an image or NIfTI file, or a folder of them")
    files = sorted(p for p in path.iterdir() if p.is_file() and _supported(p))
    if not files:
        raise DualsegError(f"{path} holds no images or NIfTI volumes ({kinds})")
    stems: dict[str, Path] = {}
    for p in files:  # a.png and a.tif would both be predicted to a.png
        stem = nifti_stem(p) if is_nifti(p) else p.stem
        if stem in stems:
            raise DualsegError(f"duplicate stem '{stem}': {stems[stem].name} and {p.name} in {path}; their "
                               "predictions would have the same name: rename or move one")
        stems[stem] = p
    return files
