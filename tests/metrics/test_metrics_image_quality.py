"""PSNR/SSIM of an SR output: hand values, MONAI's SSIM properties, and the inverse of the input normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dualseg.data.dataset import normalize_image
from dualseg.metrics.image_quality import image_quality, unit_affine


def test_psnr_hand_value_and_identity() -> None:
    reference = torch.zeros(1, 16, 16)
    prediction = reference + 0.1  # MSE 0.01 -> PSNR 10 log10(1 / 0.01) = 20 dB
    q = image_quality(prediction, reference)
    assert q["psnr"] == pytest.approx(20.0, abs=1e-4)
    assert q["ssim"] < 1
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 24, 24, generator=g)
    same = image_quality(image, image)
    assert math.isinf(same["psnr"]) and same["ssim"] == pytest.approx(1.0, abs=1e-6)
    noisy = image_quality((image + 0.05 * torch.randn(3, 24, 24, generator=g)).clamp(0, 1), image)
    assert 20 < noisy["psnr"] < 35 and 0 < noisy["ssim"] < 1


def test_data_range_scales_psnr() -> None:
    reference = torch.zeros(1, 16, 16)
    prediction = reference + 0.1
    assert image_quality(prediction, reference, data_range=2.0)["psnr"] == pytest.approx(20 + 20 * math.log10(2),
                                                                                          abs=1e-4)


def test_small_images_have_no_ssim() -> None:
    assert np.isnan(image_quality(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))["ssim"])


@pytest.mark.parametrize("mode", ["zscore", "unit", "imagenet"])
def test_unit_affine_inverts_the_normalisation(mode: str) -> None:
    unit = np.random.default_rng(1).random((10, 12, 3)).astype(np.float32)
    norm = normalize_image(unit, mode)
    a, b = unit_affine(norm, unit)
    back = torch.from_numpy(norm.transpose(2, 0, 1)) * a + b
    np.testing.assert_allclose(back.numpy(), unit.transpose(2, 0, 1), atol=1e-5)
