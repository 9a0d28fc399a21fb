"""Writing predictions: masks in the dataset's own encoding, and overlays people can look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualseg.data.io import write_png_atomic
from dualseg.safety.atomic import atomic_write

# Distinct colours for classes 1..N (class 0 is left transparent when it is the background).
PALETTE = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]],
    dtype=np.uint8,
)


ROWS_PER_CHUNK = 256  # overlays are drawn in bands of rows, so a 3504x2336 image needs no full-size float copies


def display_image(image: np.ndarray) -> np.ndarray:
    """Any (H, W, C) image as 8-bit RGB for display (per-image min-max over all channels)."""
    img = image[..., :3]
    lo, hi = float(img.min()), float(img.max())
    scale = 255 / max(hi - lo, 1e-8)
    out = np.empty((*img.shape[:2], 3), np.uint8)
    for top in range(0, img.shape[0], ROWS_PER_CHUNK):
        band = (img[top : top + ROWS_PER_CHUNK].astype(np.float32) - lo) * scale
        out[top : top + ROWS_PER_CHUNK] = band.round().astype(np.uint8)  # 1 channel broadcasts to 3
    return out


def overlay(image: np.ndarray, labels: np.ndarray, background: int | None = 0, alpha: float = 0.45) -> np.ndarray:
    """Blend class colours onto the image; ``background`` pixels stay uncoloured."""
    rgb = display_image(image)
    shift = 1 if background is None else 0  # with no background class, class 0 gets a colour too
    colours = PALETTE[(np.arange(labels.max(initial=0) + 1) + shift) % len(PALETTE)].astype(np.float32)
    for top in range(0, labels.shape[0], ROWS_PER_CHUNK):
        band, band_labels = rgb[top : top + ROWS_PER_CHUNK], labels[top : top + ROWS_PER_CHUNK]
        mask = np.ones(band_labels.shape, bool) if background is None else band_labels != background
        blended = (1 - alpha) * band[mask].astype(np.float32) + alpha * colours[band_labels[mask]]
        band[mask] = blended.round().astype(np.uint8)
    return rgb


def write_prediction(
    out_dir: Path, stem: str, encoded_mask: np.ndarray, image: np.ndarray, labels: np.ndarray,
    background: int | None, with_overlay: bool = True,
) -> None:
    write_png_atomic(encoded_mask, out_dir / f"{stem}.png")
    if with_overlay:
        write_png_atomic(overlay(image, labels, background), out_dir / "overlays" / f"{stem}.png")


def write_probabilities(
    out_dir: Path, stem: str, probs: np.ndarray, class_names: list[str], background: int | None, fmt: str = "png",
) -> None:
    """Class probabilities ``(L, H, W)`` in [0, 1] under ``out_dir/probabilities/``.

    ``png``: one 16-bit PNG per class, ``<stem>_<class>.png`` = round(p * 65535) (the background class is left
    out when there is one: it is 1 minus the rest for binary tasks); ``npy``: ``<stem>.npy``, all classes, float16
    (L, H, W) (resolution 1e-3 near 1, finer near 0).
    """
    folder = out_dir / "probabilities"
    if fmt == "npy":
        atomic_write(folder / f"{stem}.npy", lambda f: np.save(f, probs.astype(np.float16)))
        return
    names = class_names + [f"class_{c}" for c in range(len(class_names), probs.shape[0])]
    for c in range(probs.shape[0]):
        if c == background:
            continue
        levels = np.round(np.clip(probs[c], 0, 1) * 65535).astype(np.uint16)
        write_png_atomic(levels, folder / f"{stem}_{names[c]}.png")


def write_sr_image(out_dir: Path, stem: str, image: np.ndarray, bits: int = 8) -> None:
    """A super-resolved image ``(H, W, C)`` in the input's [0, 1] intensity range as an 8- or 16-bit PNG
    ``out_dir/sr/<stem>.png`` (values outside [0, 1] are clipped)."""
    top = 65535 if bits == 16 else 255
    levels = np.round(np.clip(image, 0, 1) * top).astype(np.uint16 if bits == 16 else np.uint8)
    write_png_atomic(levels[..., 0] if levels.shape[-1] == 1 else levels, out_dir / "sr" / f"{stem}.png")
