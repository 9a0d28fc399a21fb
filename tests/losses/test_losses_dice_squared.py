"""dice with ``squared=True`` (EFEN Eq. 11: sum p^2 + sum g^2 in the denominator, theta = 1) and EFEN's BCE + Dice
(Eq. 10) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from dualseg.losses import build_loss
from dualseg.registry import LOSSES


def one_image() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits 0 (p = 0.5) at 2x2 pixels, one foreground pixel."""
    return torch.zeros(1, 1, 2, 2), torch.tensor([[[1, 0], [0, 0]]])


def test_squared_dice_hand_value() -> None:
    logits, target = one_image()
    # sum(p g) = 0.5, sum(p^2) = 4 * 0.25 = 1, sum(g^2) = 1: 1 - (2 * 0.5 + 1) / (1 + 1 + 1) = 1/3
    loss = LOSSES.build("dice", squared=True, smooth=1.0)(logits, target)
    assert loss.item() == pytest.approx(1 / 3, abs=1e-6)
    # not squared: sum(p) = 2, sum(g) = 1: 1 - (1 + 1) / (2 + 1 + 1) = 1/2
    assert LOSSES.build("dice", smooth=1.0)(logits, target).item() == pytest.approx(0.5, abs=1e-6)


def test_squared_dice_averages_images() -> None:
    """Eq. 11 per image, then the mean: image 2 (p = sigmoid(2) everywhere, empty mask) has
    1 - 1 / (4 p^2 + 1)."""
    logits = torch.cat([torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0)])
    target = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 0]]])
    p = 1 / (1 + math.exp(-2.0))
    expected = (1 / 3 + (1 - 1 / (4 * p * p + 1))) / 2
    loss = LOSSES.build("dice", squared=True, smooth=1.0)(logits, target)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_efen_bce_plus_dice_hand_value() -> None:
    logits, target = one_image()
    loss = build_loss(
        [
            {"name": "bce", "output": "seg", "weight": 1.0},
            {"name": "dice", "output": "seg", "weight": 1.0, "kwargs": {"squared": True, "smooth": 1.0}},
        ]
    )
    total, _ = loss({"seg": logits}, {"mask": target})
    assert float(total) == pytest.approx(math.log(2) + 1 / 3, abs=1e-6)


def test_danie_recipe_is_cascades_dice() -> None:
    """configs/acdc/danie_s.yaml's loss (Eq. 13 with CASCADE's DiceLoss) on two heads: per class, sums over the whole
    batch with squared denominators, mean over both classes, + 0.3 CE, summed over the heads.

    Logits 0 (p = 0.5 for both classes) on two 1x2 images, one pixel of class 1:
    class 1: sum(p g) = 0.5, sum(p^2) = 4 * 0.25 = 1, sum(g^2) = 1 -> 1 - (1 + s) / (2 + s)
    class 0: sum(p g) = 1.5, sum(p^2) = 1,            sum(g^2) = 3 -> 1 - (3 + s) / (4 + s)
    """
    from pathlib import Path

    from dualseg.config import load_config

    cfg = load_config(Path(__file__).parents[2] / "configs/acdc/danie_s.yaml")
    s = 1e-5
    dice = ((1 - (1 + s) / (2 + s)) + (1 - (3 + s) / (4 + s))) / 2
    logits, target = torch.zeros(2, 2, 1, 2), torch.tensor([[[1, 0]], [[0, 0]]])
    total, _ = build_loss(cfg.loss)({"heads": [logits, logits.clone()]}, {"mask": target})
    assert float(total) == pytest.approx(2 * (0.7 * dice + 0.3 * math.log(2)), abs=1e-6)
    # not squared (sum p + sum g: 1 - (1 + s) / (3 + s) and 1 - (3 + s) / (5 + s)) the loss is another value
    plain = [{**t, "kwargs": {**t["kwargs"], "squared": False}} if t["name"] == "dice" else t for t in cfg.loss]
    other, _ = build_loss(plain)({"heads": [logits, logits.clone()]}, {"mask": target})
    assert float(other) == pytest.approx(2 * (0.7 * (2 / 3 + 2 / 5) / 2 + 0.3 * math.log(2)), abs=1e-5)
