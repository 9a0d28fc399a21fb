"""NIfTI volumes (.nii / .nii.gz, via nibabel) for slice-wise 2D prediction.

Slices are taken along the LAST array axis. A slice ``data[:, :, k]`` of a nibabel array ``(X, Y, Z)`` is shown
to the model transposed, as ``(Y, X)`` = (rows, columns): the order in which ITK/SimpleITK hand out arrays, and
the one in which 2D slice datasets such as ``acdc`` (SSL4MIS's h5 files) were cut. Label volumes go back to the
``(X, Y, Z)`` layout with the input's affine and header (sform/qform codes, pixel spacing), so they overlay the
input in any viewer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualseg.errors import DualsegError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | Path) -> str:
    """``case_01.nii.gz`` -> ``case_01``."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES[::-1]:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def read_volume(path: str | Path):
    """``(slices (Z, Y, X) float32, image)``: the volume's slices along its last axis, each transposed to
    (rows, columns), and the nibabel image (for its affine and header). 2D NIfTI files are one slice."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DualsegError(f"file not found: {path}")
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as e:  # noqa: BLE001 - nibabel raises many types for corrupt files
        raise DualsegError(f"cannot read NIfTI {path}: {str(e).splitlines()[0]} (corrupt or not NIfTI?)") from e
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DualsegError(
            f"{path}: expected a 3D volume (X, Y, Z) to predict slice by slice, got shape {data.shape}; "
            "split multi-channel or time series volumes into 3D files first"
        )
    if not np.all(np.isfinite(data)):
        raise DualsegError(f"{path}: volume holds NaN or Inf values; clean the file first")
    return np.ascontiguousarray(data.transpose(2, 1, 0)), image


def unit_range(volume: np.ndarray) -> np.ndarray:
    """Min-max scale a whole volume to [0, 1] (as the ``acdc`` slices were made; per volume, not per slice)."""
    lo, hi = float(volume.min()), float(volume.max())
    return (volume - lo) / max(hi - lo, 1e-8)


def write_volume(array: np.ndarray, reference, path: str | Path, dtype: type = np.uint8) -> Path:
    """Write ``array`` of shape ``(Z, Y, X[, K])`` (slices as :func:`read_volume` returns them, optionally with K
    values per voxel) as NIfTI ``(X, Y, Z[, K])`` with the reference image's affine and header geometry."""
    import gzip

    from dualseg.safety.atomic import atomic_write

    path = Path(path)
    axes = (2, 1, 0, 3) if array.ndim == 4 else (2, 1, 0)
    data = np.ascontiguousarray(array.transpose(axes)).astype(dtype)
    if data.ndim == 3 and data.shape != reference.shape and data.size == np.prod(reference.shape):
        data = data.reshape(reference.shape)  # a 2D (or (X, Y, Z, 1)) input keeps its own shape
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    if data.ndim == 4:
        header.set_intent("vector")
    out = type(reference)(data, reference.affine, header)
    sform, sform_code = reference.header.get_sform(coded=True)
    qform, qform_code = reference.header.get_qform(coded=True)
    if sform is not None:
        out.set_sform(sform, int(sform_code))
    if qform is not None:
        out.set_qform(qform, int(qform_code))
    data = out.to_bytes()
    atomic_write(path, lambda f: f.write(gzip.compress(data, mtime=0) if path.name.lower().endswith(".gz") else data))
    return path
