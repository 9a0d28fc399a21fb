"""Images of known geometry for the scale tests: discs and fundus-like photographs."""

from __future__ import annotations

import numpy as np


def disc(size: tuple[int, int], diameter: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    """A boolean disc of ``diameter`` px (pixel centres within the radius)."""
    h, w = size
    cy, cx = centre or ((h - 1) / 2, (w - 1) / 2)
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2


def fundus(size: tuple[int, int], diameter: float, seed: int = 0) -> np.ndarray:
    """A fundus-like 8-bit RGB photograph: a reddish disc with darker vessels-like streaks and a bright rim-to-centre
    gradient, on a noisy near-black surround."""
    rng = np.random.default_rng(seed)
    inside = disc(size, diameter)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) / (diameter / 2)
    shade = np.clip(1.0 - 0.5 * r**2, 0.4, 1.0) * inside
    streaks = 1 - 0.3 * (np.sin(xx / 7.0 + yy / 11.0) > 0.9)
    rgb = np.stack([200 * shade * streaks, 90 * shade * streaks, 40 * shade], axis=-1)
    rgb += rng.uniform(0, 8, rgb.shape)  # the sensor noise of the dark surround
    return np.clip(rgb, 0, 255).astype(np.uint8)
