"""The pixel spacing files state (``dualseg.data.spacing``): TIFF resolution tags in each unit, ImageJ's unit, PNG
pHYs, NIfTI headers, and the software defaults that state nothing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from dualseg.data.spacing import pixels_per_mm

PIXELS = np.zeros((8, 8), np.uint8)


def test_tiff_resolution_in_inches_centimetres_and_imagej_units(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "cm.tif", PIXELS, resolution=(100, 100), resolutionunit="CENTIMETER")
    assert pixels_per_mm(tmp_path / "cm.tif") == pytest.approx(10.0)  # 100 px per cm
    tifffile.imwrite(tmp_path / "inch.tif", PIXELS, resolution=(254, 508), resolutionunit="INCH")
    assert pixels_per_mm(tmp_path / "inch.tif") == pytest.approx((10 + 20) / 2)  # x and y averaged
    tifffile.imwrite(tmp_path / "ij.tif", PIXELS, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    assert pixels_per_mm(tmp_path / "ij.tif") == pytest.approx(2000.0)  # 2 px per micron (0.5 um pixels)
    tifffile.imwrite(tmp_path / "none.tif", PIXELS)
    assert pixels_per_mm(tmp_path / "none.tif") is None
    tifffile.imwrite(tmp_path / "default.tif", PIXELS, resolution=(72, 72), resolutionunit="INCH")
    assert pixels_per_mm(tmp_path / "default.tif") is None  # software's default, not a measurement


def test_png_phys_and_nifti_headers(tmp_path: Path) -> None:
    Image.fromarray(PIXELS).save(tmp_path / "a.png", dpi=(254, 254))
    assert pixels_per_mm(tmp_path / "a.png") == pytest.approx(10.0, rel=1e-3)  # pHYs in px per metre, rounded
    for name, dpi in (("b.png", (72, 72)), ("c.png", (96, 96)), ("d.png", None)):
        Image.fromarray(PIXELS).save(tmp_path / name, **({"dpi": dpi} if dpi else {}))
        assert pixels_per_mm(tmp_path / name) is None
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.float32), np.diag([1.25, 1.25, 10.0, 1.0])), tmp_path / "v.nii.gz")
    assert pixels_per_mm(tmp_path / "v.nii.gz") == pytest.approx(0.8)  # in-plane 1.25 mm pixels
    Image.fromarray(PIXELS).save(tmp_path / "e.jpg")
    assert pixels_per_mm(tmp_path / "e.jpg") is None  # JFIF density is read as no spacing
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    assert pixels_per_mm(tmp_path / "broken.tif") is None
