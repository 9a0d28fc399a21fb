"""Scale proxies on images of known geometry, the factor arithmetic and its bounds, resampling sizes, and the scale
fields of the InputSpec (round trip, records without them)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dualseg.config import config_from_dict
from dualseg.data.descriptions import get_description
from dualseg.errors import DualsegError
from dualseg.inference.scale import (
    check_factor,
    fov_diameter,
    fov_from_image,
    object_size,
    resample,
    resample_array,
    scale_factor,
    scaled_size,
    summarise,
)
from dualseg.inference.spec import InputSpec
from dualseg.inference.train_scale import resolve_proxy
from tests.inference.scale_images import disc, fundus


def test_fov_diameter_of_a_disc_from_its_mask_and_from_the_image() -> None:
    mask = disc((256, 300), 200)
    assert fov_diameter(fov=mask) == pytest.approx(200, rel=0.02)
    image = fundus((256, 300), 200)
    assert fov_diameter(image=image) == pytest.approx(200, rel=0.02)
    np.testing.assert_array_equal(fov_from_image(image), mask)  # the surround's noise is far below the threshold
    assert fov_diameter(image=image, fov=mask) == fov_diameter(fov=mask)  # a FOV mask wins over thresholding


def test_fov_diameter_of_a_circle_cut_at_top_and_bottom_is_its_width() -> None:
    # a 200 px circle in a frame 150 px high: the equivalent-circle diameter would be ~180, the width stays 200
    mask = disc((150, 260), 200)
    assert mask.any(axis=1).sum() == 150
    assert fov_diameter(fov=mask) == pytest.approx(200, rel=0.02)
    assert math.sqrt(4 * mask.sum() / math.pi) < 190


def test_fov_diameter_ignores_specks_and_follows_exposure() -> None:
    image = fundus((256, 256), 180).astype(np.float32)
    image[5:8, 5:8] = 255  # a glint in the surround: not the largest component
    assert fov_diameter(image=image) == pytest.approx(180, rel=0.02)
    assert fov_diameter(image=image * 0.3) == pytest.approx(180, rel=0.02)  # darker exposure, same FOV
    assert fov_diameter(image=image[..., 0]) == pytest.approx(180, rel=0.02)  # gray images too
    assert fov_diameter(fov=np.zeros((8, 8))) is None


def test_object_size_is_the_median_equivalent_diameter() -> None:
    labels = np.zeros((200, 200), np.int64)
    for k, (d, cy, cx) in enumerate([(20, 30, 30), (30, 100, 40), (40, 100, 140)]):
        labels[disc((200, 200), d, (cy, cx))] = 1 + k % 2  # two foreground classes: both count as objects
    labels[190, 190] = 1  # a speck: left out
    middle = disc((200, 200), 30, (100, 40)).sum()
    assert object_size(labels) == pytest.approx(math.sqrt(4 * middle / math.pi))
    assert object_size(labels) == pytest.approx(30, rel=0.02)
    assert object_size(np.zeros((10, 10))) is None
    # squares of side 10: equivalent diameter sqrt(400 / pi) = 11.28; another background class
    squares = np.full((50, 50), 2)
    squares[5:15, 5:15] = 0
    squares[30:40, 20:30] = 1
    assert object_size(squares, background=2) == pytest.approx(math.sqrt(400 / math.pi))


def test_factor_arithmetic_and_bounds() -> None:
    assert scale_factor(540, 900) == pytest.approx(0.6)
    assert scale_factor(200, 100) == 2.0
    # inside the training images' range (536..541 px), widened by 3 %: not resampled; just outside: resampled
    assert scale_factor(540, 550, (536, 541)) == 1.0 and scale_factor(540, 521, (536, 541)) == 1.0
    assert scale_factor(540, 560, (536, 541)) == pytest.approx(540 / 560)
    assert check_factor(0.25, "x") == 0.25 and check_factor(4.0, "x") == 4.0
    for bad in (0.2, 4.5, float("nan"), float("inf")):
        with pytest.raises(DualsegError, match=r"--scale FACTOR.*--scale none"):
            check_factor(bad, "img.png")
    with pytest.raises(ValueError):
        scale_factor(200, 0)
    stats = summarise([10.0, None, 30.0, 20.0])
    assert stats.median == 20.0 and stats.spread == (10.0, 30.0)
    assert summarise([None]) is None


def test_resampling_sizes_and_antialiasing() -> None:
    assert scaled_size((584, 565), 1.7) == (993, 960) and scaled_size((3, 3), 0.01) == (1, 1)
    x = np.zeros((2, 10, 20), np.float32)
    x[:, :, ::2] = 1  # a pattern at the finest frequency: antialiased shrinking averages it to 0.5
    small = resample_array(x, 0.5)
    assert small.shape == (2, 5, 10)
    np.testing.assert_allclose(small[..., 1:-1], 0.5, atol=1e-6)  # the border columns see the edge
    assert set(np.unique(torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=(5, 10))[0])) == {1.0}
    t = torch.rand(1, 3, 8, 8)
    assert resample(t, (8, 8)) is t and resample(t, (16, 12)).shape == (1, 3, 16, 12)


def test_spec_round_trip_with_and_without_scale() -> None:
    spec = InputSpec(size_divisor=8).with_train_scale("fov_diameter", summarise([530.0, 540.0, 541.0]))
    assert spec.has_scale and spec.train_scale == 540.0 and spec.train_scale_range == (530.0, 541.0)
    data = spec.to_dict()
    assert data["scale_proxy"] == "fov_diameter" and data["train_scale_range"] == [530.0, 541.0]
    assert InputSpec.from_dict(json.loads(json.dumps(data))) == spec
    plain = InputSpec()
    assert not plain.has_scale and plain.scale_proxy == "none" and plain.train_scale is None
    assert InputSpec.from_dict(plain.to_dict()) == plain
    older = {k: v for k, v in data.items() if not k.startswith(("scale_", "train_scale"))}
    assert InputSpec.from_dict(older) == InputSpec(size_divisor=8)  # a record without the keys: no scale
    assert InputSpec().with_train_scale("object_size", None) == InputSpec()  # nothing measurable: none
    with pytest.raises(ValueError, match="scale_proxy"):
        InputSpec.from_dict({"scale_proxy": "fov_area"})
    with pytest.raises(ValueError, match="train_scale"):
        InputSpec.from_dict({"scale_proxy": "object_size", "train_scale": -1})


def test_the_proxy_of_a_config() -> None:
    import dualseg.data.datasets  # noqa: F401 - registers the known descriptions

    drive, isbi = get_description("drive"), get_description("isbi2012")
    assert drive.scale_proxy == "fov_diameter" and isbi.scale_proxy == "none"
    auto = config_from_dict({})
    assert auto.data.scale_proxy == "auto"
    assert resolve_proxy(auto, drive) == "fov_diameter" and resolve_proxy(auto, isbi) == "none"
    assert resolve_proxy(config_from_dict({"data": {"scale_proxy": "object_size"}}), isbi) == "object_size"
    assert resolve_proxy(config_from_dict({"data": {"scale_proxy": "none"}}), drive) == "none"
    assert resolve_proxy(config_from_dict({"data": {"resize": [64, 64]}}), drive) == "none"  # resize fixes it
    with pytest.raises(DualsegError, match="scale_proxy"):
        config_from_dict({"data": {"scale_proxy": "fov_area"}})
