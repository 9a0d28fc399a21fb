"""Reading and writing 2D images and masks: PNG, JPEG, BMP, GIF and TIFF; 8/16-bit; gray, RGB, RGBA."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dualseg.errors import DualsegError
from dualseg.safety.limits import check_pixels

Image.MAX_IMAGE_PIXELS = None  # dualseg's own limit (check_pixels) applies, with a one-line message

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif")
FLOAT_MAGNITUDE_MAX = 1e18  # float pixels beyond this overflow float32 in a variance (x**2 > 3.4e38)


def _read_array(path: Path, palette_as_color: bool) -> np.ndarray:
    if not path.is_file():
        raise DualsegError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise DualsegError(f"empty (0-byte) file: {path}; replace it with a valid image or remove the pair")
    try:
        with Image.open(path) as im:
            check_pixels(path, *im.size)  # from the header, before anything is decoded
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise DualsegError(
                    f"{path} holds {frames} pages/frames (a stack?); dualseg reads 2D images: save one file per slice"
                )
            im.load()
            if im.mode == "P" and palette_as_color:
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as pil_error:
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                import tifffile

                with tifffile.TiffFile(path) as tif:
                    shape = tif.pages[0].shape  # (H, W), (H, W, C) or channel-first (C, H, W)
                    height, width = shape[:2] if len(shape) == 3 and shape[-1] <= 4 else shape[-2:]
                    check_pixels(path, width, height)
                    return np.asarray(tif.asarray())
            except DualsegError:
                raise
            except Exception as tiff_error:  # noqa: BLE001 - any decoder failure means an unreadable file
                raise DualsegError(f"cannot read TIFF {path}: {tiff_error}") from tiff_error
        raise DualsegError(f"cannot read image {path}: {pil_error} (corrupt or truncated file?)") from pil_error


def read_image(path: str | Path, extra_channels: Sequence[str | Path] = ()) -> np.ndarray:
    """Read an image as an (H, W, C) array in its stored dtype (uint8, uint16, float32...).

    RGBA keeps its 4 channels here; :func:`to_channels` decides what the model sees. ``extra_channels`` are further
    files of the same case stacked after it along C (nnU-Net's ``_0001``, ``_0002`` ... channel files); channels of
    different dtypes are each scaled to [0, 1] float32 first.
    """
    if extra_channels:
        parts = [read_image(p) for p in (path, *extra_channels)]
        if any(p.shape[:2] != parts[0].shape[:2] for p in parts):
            sizes = ", ".join(f"{p.shape[1]}x{p.shape[0]}" for p in parts)
            raise DualsegError(f"{path}: its channel files differ in size ({sizes}, W x H); they must match")
        if len({p.dtype for p in parts}) > 1:  # e.g. 16-bit and 8-bit channels: each scaled by its own range
            parts = [to_float(p, path) for p in parts]
        return np.concatenate(parts, axis=-1)
    arr = _read_array(Path(path), palette_as_color=True)
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channel-first TIFF
    if arr.ndim != 3:
        raise DualsegError(f"{path}: expected a 2D image (H, W[, C]), got an array of shape {arr.shape}")
    return arr


def read_mask(path: str | Path) -> np.ndarray:
    """Read a label image as an (H, W) integer array.

    Palette PNGs keep their indices (the VOC convention); RGB masks whose channels agree are reduced to one.
    """
    arr = _read_array(Path(path), palette_as_color=False)
    if arr.ndim == 3:
        if arr.shape[-1] == 4:
            arr = arr[..., :3]
        if not np.all(arr == arr[..., :1]):
            raise DualsegError(
                f"{path}: colour mask with differing channels; store masks as single-channel class indices"
            )
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DualsegError(f"{path}: expected a 2D mask, got an array of shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DualsegError(f"{path}: float mask with non-integer values; masks must hold class indices")
        arr = arr.astype(np.int64)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


def to_float(image: np.ndarray, path: str | Path = "") -> np.ndarray:
    """Scale an integer image to [0, 1] float32 by its dtype's range; float images pass (checked finite)."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    out = image.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise DualsegError(f"{path}: image holds NaN or Inf values; clean the file or drop it")
    peak = float(np.abs(out).max(initial=0))
    if peak > FLOAT_MAGNITUDE_MAX:
        raise DualsegError(f"{path}: image values reach {peak:.3g}, beyond what float32 arithmetic can normalise "
                           f"(|x| <= {FLOAT_MAGNITUDE_MAX:.0e}: their squares would overflow); rescale the file")
    return out


def to_channels(image: np.ndarray, channels: int, path: str | Path = "") -> np.ndarray:
    """Convert an (H, W, C) image to the channel count a model expects (RGBA drops alpha; gray<->RGB)."""
    c = image.shape[-1]
    if c == channels:  # e.g. 2 or 4 modalities of an nnU-Net dataset: no alpha to drop
        return image
    if c == 4:
        image, c = image[..., :3], 3
    if c == 2:  # gray + alpha
        image, c = image[..., :1], 1
    if c == channels:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=-1)
    if c == 3 and channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return (image.astype(np.float32) @ weights)[..., None]
    raise DualsegError(f"{path}: image has {c} channels, cannot convert to the {channels} the model expects")


def write_png_atomic(array: np.ndarray, path: str | Path) -> None:
    """Write an array as PNG atomically (:mod:`dualseg.safety.atomic`): no half-written file is left behind."""
    from dualseg.safety.atomic import atomic_write

    atomic_write(path, lambda f: Image.fromarray(array).save(f, format="PNG"))
