"""ce / bce / dice losses against hand computations and torch.nn.functional."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, DiceLoss
from dualseg.registry import LOSSES


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def multi_inputs(seed: int = 0, n: int = 2, c: int = 3, h: int = 4, w: int = 5):
    g = gen(seed)
    logits = torch.randn(n, c, h, w, generator=g)
    target = torch.randint(0, c, (n, h, w), generator=g)
    valid = torch.rand(n, h, w, generator=g) > 0.4
    return logits, target, valid


def binary_inputs(seed: int = 0, n: int = 2, h: int = 4, w: int = 5):
    g = gen(seed)
    logits = torch.randn(n, 1, h, w, generator=g)
    target = torch.randint(0, 2, (n, h, w), generator=g)
    valid = torch.rand(n, h, w, generator=g) > 0.4
    return logits, target, valid


def pixels(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The valid pixels as (P, C) logits and (P,) targets."""
    return logits.permute(0, 2, 3, 1)[valid], target[valid]


def test_registered() -> None:
    assert {"ce", "bce", "dice"} <= set(LOSSES.names())
    assert isinstance(LOSSES.build("dice", smooth=1.0), DiceLoss)


# ---------------------------------------------------------------- cross entropy


def test_ce_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)  # pixel 0: (2, 0); pixel 1: (0, 1)
    target = torch.tensor([[[0, 0]]])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"class_weights": [0.2, 1.0, 3.0]},
        {"label_smoothing": 0.1},
        {"class_weights": [0.5, 2.0, 1.0], "label_smoothing": 0.2},
    ],
)
def test_ce_matches_torch_with_and_without_valid(kw: dict) -> None:
    logits, target, valid = multi_inputs()
    loss = CrossEntropyLoss(**kw)
    tkw = {"label_smoothing": kw.get("label_smoothing", 0.0)}
    if "class_weights" in kw:
        tkw["weight"] = torch.tensor(kw["class_weights"])
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target, **tkw))
    torch.testing.assert_close(loss(logits, target, valid), F.cross_entropy(*pixels(logits, target, valid), **tkw))


def test_ce_errors() -> None:
    logits, target, _ = binary_inputs()
    with pytest.raises(DualsegError, match="use 'bce'"):
        CrossEntropyLoss()(logits, target)
    logits, target, _ = multi_inputs()
    with pytest.raises(DualsegError, match=r"labels 1\.\.3 .* 3 classes"):
        CrossEntropyLoss()(logits, target + 1)
    with pytest.raises(DualsegError, match="class_weights"):
        CrossEntropyLoss(class_weights=[1.0, 2.0])(logits, target)
    with pytest.raises(DualsegError, match="target mask shape"):
        CrossEntropyLoss()(logits, target[:, :2])
    with pytest.raises(DualsegError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)


# ---------------------------------------------------------------- binary cross entropy


def test_bce_by_hand() -> None:
    logits = torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 2)
    target = torch.tensor([[[1, 0]]])
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert BinaryCrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # pos_weight multiplies the foreground term only
    expected_pw = (3 * math.log(2) + math.log(1 + math.exp(2))) / 2
    assert BinaryCrossEntropyLoss(pos_weight=3.0)(logits, target).item() == pytest.approx(expected_pw, rel=1e-6)


@pytest.mark.parametrize("pos_weight", [None, 2.5])
def test_bce_matches_torch(pos_weight: float | None) -> None:
    logits, target, valid = binary_inputs()
    pw = None if pos_weight is None else torch.tensor(pos_weight)
    loss = BinaryCrossEntropyLoss(pos_weight=pos_weight)
    ref = F.binary_cross_entropy_with_logits(logits[:, 0], target.float(), pos_weight=pw)
    torch.testing.assert_close(loss(logits, target), ref)
    ref_valid = F.binary_cross_entropy_with_logits(logits[:, 0][valid], target[valid].float(), pos_weight=pw)
    torch.testing.assert_close(loss(logits, target, valid), ref_valid)
    torch.testing.assert_close(loss(logits, target.unsqueeze(1), valid.float()), ref_valid)  # (N,1,H,W), float FOV


def test_bce_errors() -> None:
    logits, target, _ = multi_inputs()
    with pytest.raises(DualsegError, match="use 'ce'"):
        BinaryCrossEntropyLoss()(logits, target)
    logits, target, _ = binary_inputs()
    with pytest.raises(DualsegError, match="0/1"):
        BinaryCrossEntropyLoss()(logits, target * 2)


# ---------------------------------------------------------------- dice


def soft_dice_loss(p: torch.Tensor, g: torch.Tensor, smooth: float, dims: tuple[int, ...]) -> torch.Tensor:
    return 1 - (2 * (p * g).sum(dims) + smooth) / (p.sum(dims) + g.sum(dims) + smooth)


def test_dice_binary_by_hand() -> None:
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 1.0]]], [[[3.0, -3.0], [0.5, 0.0]]]])  # (2, 1, 2, 2)
    target = torch.tensor([[[0, 1], [0, 1]], [[1, 0], [0, 0]]])
    p = torch.sigmoid(logits[:, 0])
    g = target.float()
    s = 1.0
    per_image = [1 - (2 * (p[i] * g[i]).sum() + s) / (p[i].sum() + g[i].sum() + s) for i in range(2)]
    expected = (per_image[0] + per_image[1]) / 2
    torch.testing.assert_close(DiceLoss(smooth=s)(logits, target), expected)
    pooled = 1 - (2 * (p * g).sum() + s) / (p.sum() + g.sum() + s)
    torch.testing.assert_close(DiceLoss(smooth=s, batch=True)(logits, target), pooled)


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_multiclass_matches_formula(include_background: bool, batch: bool) -> None:
    logits, target, _ = multi_inputs(c=4)
    p = logits.softmax(1)
    g = F.one_hot(target, 4).permute(0, 3, 1, 2).float()
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    expected = soft_dice_loss(p, g, 1e-5, (0, 2, 3) if batch else (2, 3)).mean()
    loss = DiceLoss(include_background=include_background, batch=batch)
    torch.testing.assert_close(loss(logits, target), expected)


def test_dice_with_valid_zeroes_outside() -> None:
    logits, target, valid = multi_inputs(c=3)
    m = valid.unsqueeze(1).float()
    p = logits.softmax(1) * m
    g = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * m
    expected = soft_dice_loss(p[:, 1:], g[:, 1:], 1e-5, (2, 3)).mean()
    torch.testing.assert_close(DiceLoss()(logits, target, valid), expected)


@pytest.mark.parametrize("num_classes", [1, 2, 4])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_perfect_prediction_near_zero(num_classes: int, batch: bool) -> None:
    target = torch.randint(0, max(2, num_classes), (2, 8, 8), generator=gen(3))
    if num_classes == 1:
        logits = (target.float() * 2 - 1).unsqueeze(1) * 30
    else:
        logits = (F.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * 2 - 1) * 30
    assert DiceLoss(batch=batch)(logits, target).item() < 1e-4
    assert DiceLoss(batch=batch)(-logits, target).item() > 0.9


# ---------------------------------------------------------------- shared behaviour


LOSS_CASES = [
    ("ce", lambda: CrossEntropyLoss(class_weights=[1.0, 2.0, 0.5], label_smoothing=0.1), multi_inputs),
    ("bce", lambda: BinaryCrossEntropyLoss(pos_weight=2.0), binary_inputs),
    ("dice-multi", lambda: DiceLoss(), multi_inputs),
    ("dice-binary", lambda: DiceLoss(batch=True), binary_inputs),
]


@pytest.mark.parametrize(("name", "make", "inputs"), LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_fov_masked_pixels_do_not_change_loss(name: str, make, inputs) -> None:
    loss = make()
    logits, target, valid = inputs(seed=5)
    before = loss(logits, target, valid)
    outside = ~valid
    logits2 = torch.where(outside.unsqueeze(1), torch.randn(logits.shape, generator=gen(9)) * 10, logits)
    target2 = torch.where(outside, torch.full_like(target, 255), target)  # even invalid labels are never read
    torch.testing.assert_close(loss(logits2, target2, valid), before)
    assert not torch.allclose(loss(logits2, target), loss(logits, target))  # without the FOV they do count


@pytest.mark.parametrize(("name", "make", "inputs"), LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_gradient_flows(name: str, make, inputs) -> None:
    logits, target, valid = inputs(seed=6)
    logits.requires_grad_(True)
    value = make()(logits, target, valid)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    grad = logits.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    assert (grad.abs().sum(1)[~valid] == 0).all()  # nothing flows to pixels outside the FOV


def test_empty_fov_gives_zero_not_nan() -> None:
    logits, target, valid = multi_inputs()
    none = torch.zeros_like(valid)
    assert CrossEntropyLoss()(logits, target, none).item() == 0.0
    blogits, btarget, _ = binary_inputs()
    assert BinaryCrossEntropyLoss()(blogits, btarget, none).item() == 0.0
    assert torch.isfinite(DiceLoss()(logits, target, none))


def test_half_precision_logits() -> None:
    logits, target, valid = multi_inputs()
    for loss in (CrossEntropyLoss(), DiceLoss()):
        out = loss(logits.half(), target, valid)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, loss(logits.half().float(), target, valid))
