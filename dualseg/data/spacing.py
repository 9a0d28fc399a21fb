"""The pixel spacing a file states, as a resolution in pixels per millimetre (the ``spacing`` scale proxy:
:mod:`dualseg.inference.scale`), or None where the file states none.

- NIfTI: the header's in-plane voxel sizes (``pixdim[1:3]``, millimetres as the format defines them), averaged;
- TIFF: ``XResolution`` / ``YResolution`` in pixels per inch or per centimetre (``ResolutionUnit`` 2 or 3); with no
  unit (1), the unit ImageJ names in the image description (``unit=micron``, ``um``, ``nm``, ``mm``, ``cm``);
- PNG: the ``pHYs`` chunk when its unit is the metre.

72 and 96 pixels per inch are the defaults that image software writes without knowing the sensor, not a
measurement: they are read as no spacing. JPEG's JFIF density is such a default almost always and is not read.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from PIL import Image

MM_PER_UNIT = {"mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "cm": 10.0, "micron": 1e-3, "um": 1e-3,
               "µm": 1e-3, "\\u00b5m": 1e-3, "nm": 1e-6, "inch": 25.4}
SOFTWARE_DPI = (72.0, 96.0)  # what software writes when it knows no resolution
_TIFF_UNIT_MM = {2: 25.4, 3: 10.0}  # ResolutionUnit: 2 inch, 3 centimetre
_IMAGEJ_UNIT = re.compile(r"^unit=(.+)$", re.MULTILINE)


def _mean_resolution(x: float, y: float, mm_per_unit: float) -> float | None:
    """Pixels per mm from pixels per unit along x and y; None for non-positive values and for software's default
    pixels per inch."""
    if x <= 0 or y <= 0 or (mm_per_unit == 25.4 and x == y and round(x, 1) in SOFTWARE_DPI):
        return None
    return (x + y) / 2 / mm_per_unit


def _tiff(image: Image.Image) -> float | None:
    tags = getattr(image, "tag_v2", None)
    if tags is None or 282 not in tags:
        return None
    x, y = float(tags[282]), float(tags.get(283, tags[282]))
    unit = int(tags.get(296, 2))
    if unit in _TIFF_UNIT_MM:
        return _mean_resolution(x, y, _TIFF_UNIT_MM[unit])
    found = _IMAGEJ_UNIT.search(str(tags.get(270, "")))
    name = found.group(1).strip().lower() if found else None
    if name not in MM_PER_UNIT:
        return None
    return _mean_resolution(x, y, MM_PER_UNIT[name])


def _png(image: Image.Image) -> float | None:
    dpi = image.info.get("dpi")  # Pillow sets it from pHYs only when the unit is the metre
    if not dpi:
        return None
    return _mean_resolution(float(dpi[0]), float(dpi[1]), 25.4)


def _nifti(path: Path) -> float | None:
    import nibabel as nib

    zooms = nib.load(str(path)).header.get_zooms()
    if len(zooms) < 2 or zooms[0] <= 0 or zooms[1] <= 0:
        return None
    return 2 / (float(zooms[0]) + float(zooms[1]))


def pixels_per_mm(path: str | Path) -> float | None:
    """The resolution ``path`` states (pixels per mm, in-plane, x and y averaged), or None (see the module)."""
    path = Path(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        return _nifti(path)
    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's complaints about a header mean no spacing, said by None
        try:
            with Image.open(path) as image:
                return _tiff(image) if suffix in (".tif", ".tiff") else _png(image)
        except (OSError, ValueError, TypeError, ZeroDivisionError):
            return None  # a header Pillow cannot read states no spacing; the pixels are read (or refused) elsewhere
