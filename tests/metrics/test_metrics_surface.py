"""HD95 and ASD: against an independent scipy implementation (medpy's algorithm), MONAI, hand values, empty rules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage

from dualseg.errors import DualsegError
from dualseg.metrics.surface import diagonal, surface_metrics


def _directed(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    """Distances from each surface pixel of ``a`` to the surface of ``b`` (surface = mask minus its erosion)."""
    structure = ndimage.generate_binary_structure(a.ndim, 1)
    edge_a = a & ~ndimage.binary_erosion(a, structure)
    edge_b = b & ~ndimage.binary_erosion(b, structure)
    return ndimage.distance_transform_edt(~edge_b, sampling=spacing)[edge_a]


def reference(pred: np.ndarray, target: np.ndarray, spacing) -> tuple[float, float]:
    d1, d2 = _directed(pred, target, spacing), _directed(target, pred, spacing)
    return max(np.percentile(d1, 95), np.percentile(d2, 95)), (d1.mean() + d2.mean()) / 2


def blobs(shape: tuple[int, ...], num_labels: int, g: torch.Generator) -> torch.Tensor:
    """Smooth random label maps (blobs, not salt-and-pepper)."""
    field = torch.rand(num_labels, *[max(2, s // 4) for s in shape], generator=g)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    up = torch.nn.functional.interpolate(field[None], size=shape, mode=mode, align_corners=False)[0]
    return up.argmax(0)


@pytest.mark.parametrize("shape,spacing", [((16, 16), None), ((16, 16), (0.7, 1.3)), ((4, 12, 12), (2.5, 1.0, 1.0))])
def test_against_scipy_reference(shape, spacing) -> None:
    g = torch.Generator().manual_seed(len(shape) * 10 + (spacing is not None))
    checked = 0
    for _ in range(40 if len(shape) == 2 else 15):
        pred, target = blobs(shape, 3, g), blobs(shape, 3, g)
        ours = surface_metrics(pred, target, 3, spacing)
        sp = spacing or (1.0,) * len(shape)
        for c in range(3):
            p, t = (pred == c).numpy(), (target == c).numpy()
            if p.any() and t.any():
                hd, asd = reference(p, t, sp)
                assert ours["hd95"][c] == pytest.approx(hd, rel=1e-5, abs=1e-5)
                assert ours["asd"][c] == pytest.approx(asd, rel=1e-5, abs=1e-5)
                checked += 1
    assert checked > 20


def test_hd95_matches_monai_directly() -> None:
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        pred, target = blobs((16, 16), 2, g), blobs((16, 16), 2, g)
        if not (pred.any() and target.any() and (pred == 0).any() and (target == 0).any()):
            continue
        onehot = lambda x: torch.nn.functional.one_hot(x, 2).permute(2, 0, 1)[None].float()  # noqa: E731
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = compute_hausdorff_distance(onehot(pred), onehot(target), include_background=True, percentile=95)
        np.testing.assert_allclose(surface_metrics(pred, target, 2)["hd95"], ref[0].numpy(), rtol=1e-5)


def test_hand_values_and_empty_rule() -> None:
    target = torch.zeros(20, 20, dtype=torch.long)
    target[5:10, 5:10] = 1
    shifted = torch.roll(target, 3, dims=1)  # the same square moved 3 columns
    m = surface_metrics(shifted, target, 2)
    assert m["hd95"][1] == pytest.approx(3.0)  # left/right edges are 3 away; top/bottom points 0..3
    assert 0 < m["asd"][1] < 3
    same = surface_metrics(target, target, 2)
    assert same["hd95"][1] == 0 and same["asd"][1] == 0
    empty = torch.zeros_like(target)
    worst = diagonal((20, 20))
    assert worst == pytest.approx(math.hypot(20, 20))
    for pred, ref in ((empty, target), (target, empty)):  # a miss, a false alarm: the worst distance
        m = surface_metrics(pred, ref, 2, classes=[1])
        assert m["hd95"][1] == worst and m["asd"][1] == worst
        assert np.isnan(m["hd95"][0])  # not asked for
    both = surface_metrics(empty, empty, 2)
    assert np.isnan(both["hd95"][1]) and np.isnan(both["asd"][1])
    assert surface_metrics(empty, target, 2, spacing=(2.0, 0.5))["hd95"][1] == pytest.approx(math.hypot(40, 10))


def test_valid_mask_sets_outside_to_background() -> None:
    target = torch.zeros(16, 16, dtype=torch.long)
    target[2:6, 2:6] = 1
    pred = target.clone()
    pred[12:14, 12:14] = 1  # a false alarm outside the field of view
    valid = torch.zeros(16, 16, dtype=torch.bool)
    valid[:10, :10] = True
    assert surface_metrics(pred, target, 2, valid=valid)["hd95"][1] == 0
    assert surface_metrics(pred, target, 2)["hd95"][1] > 0


def test_bad_spacing_raises() -> None:
    x = torch.zeros(4, 4, dtype=torch.long)
    with pytest.raises(DualsegError, match="spacing"):
        surface_metrics(x, x, 2, spacing=(1.0, 1.0, 1.0))
