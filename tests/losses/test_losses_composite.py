"""CompositeLoss / build_loss: weighting, logging keys, outputs and targets, config errors."""

from __future__ import annotations

import pytest
import torch

from dualseg.errors import DualsegError
from dualseg.losses import CompositeLoss, CrossEntropyLoss, DiceLoss, LossTerm, build_loss


def make_batch(seed: int = 0, c: int = 3):
    g = torch.Generator().manual_seed(seed)
    outputs = {"seg": torch.randn(2, c, 6, 6, generator=g), "aux_1": torch.randn(2, c, 6, 6, generator=g)}
    batch = {
        "image": torch.randn(2, 1, 6, 6, generator=g),
        "mask": torch.randint(0, c, (2, 6, 6), generator=g),
        "fov": torch.rand(2, 6, 6, generator=g) > 0.3,
    }
    return outputs, batch


def test_weighted_sum_and_values() -> None:
    outputs, batch = make_batch()
    loss = build_loss([{"name": "ce", "weight": 0.5}, {"name": "dice", "weight": 2, "kwargs": {"smooth": 1.0}}])
    total, values = loss(outputs, batch)
    ce = CrossEntropyLoss()(outputs["seg"], batch["mask"], batch["fov"])
    dice = DiceLoss(smooth=1.0)(outputs["seg"], batch["mask"], batch["fov"])
    assert set(values) == {"ce", "dice"}
    assert values["ce"] == pytest.approx(ce.item(), rel=1e-6)
    assert values["dice"] == pytest.approx(dice.item(), rel=1e-6)
    torch.testing.assert_close(total, 0.5 * ce + 2 * dice)
    assert all(isinstance(v, float) for v in values.values())


def test_gradient_through_composite() -> None:
    outputs, batch = make_batch()
    seg = outputs["seg"].requires_grad_(True)
    total, _ = build_loss([{"name": "ce"}, {"name": "dice"}])(outputs, batch)
    total.backward()
    assert seg.grad is not None and seg.grad.abs().sum() > 0


def test_same_loss_on_two_outputs_gets_disambiguated_keys() -> None:
    outputs, batch = make_batch()
    loss = build_loss([{"name": "ce"}, {"name": "dice"}, {"name": "dice", "output": "aux_1", "weight": 0.4}])
    total, values = loss(outputs, batch)
    assert list(values) == ["ce", "dice@seg", "dice@aux_1"]
    expected = values["ce"] + values["dice@seg"] + 0.4 * values["dice@aux_1"]
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert values["dice@aux_1"] == pytest.approx(DiceLoss()(outputs["aux_1"], batch["mask"], batch["fov"]).item())
    # the very same term twice still gets distinct keys
    same = build_loss([{"name": "ce"}, {"name": "ce"}])
    assert same(outputs, batch)[1].keys() == {"ce@seg#0", "ce@seg#1"}


def test_fov_used_by_default_and_can_be_disabled() -> None:
    outputs, batch = make_batch()
    with_fov = build_loss([{"name": "ce"}])(outputs, batch)[0]
    without = build_loss([{"name": "ce", "valid": None}])(outputs, batch)[0]
    no_key = build_loss([{"name": "ce"}])(outputs, {"mask": batch["mask"]})[0]
    torch.testing.assert_close(with_fov, CrossEntropyLoss()(outputs["seg"], batch["mask"], batch["fov"]))
    torch.testing.assert_close(without, CrossEntropyLoss()(outputs["seg"], batch["mask"]))
    torch.testing.assert_close(no_key, without)


def test_custom_target_key() -> None:
    outputs, batch = make_batch()
    batch["coarse_mask"] = torch.zeros_like(batch["mask"])
    total, _ = build_loss([{"name": "ce", "target": "coarse_mask", "valid": None}])(outputs, batch)
    torch.testing.assert_close(total, CrossEntropyLoss()(outputs["seg"], batch["coarse_mask"]))


def test_loss_term_dataclass() -> None:
    term = LossTerm("dice", weight=2, kwargs={"batch": True})
    assert (term.output, term.target, term.valid, term.weight) == ("seg", "mask", "fov", 2.0)
    loss = CompositeLoss([term])
    assert isinstance(loss.losses[0], DiceLoss) and loss.losses[0].batch


def test_missing_output_names_available() -> None:
    outputs, batch = make_batch()
    loss = build_loss([{"name": "dice", "output": "aux_2"}])
    with pytest.raises(DualsegError, match=r"'aux_2'.*did you mean 'aux_1'.*seg, aux_1"):
        loss(outputs, batch)
    with pytest.raises(DualsegError, match="batch entry 'hr_image'.*image, mask, fov"):
        build_loss([{"name": "ce", "target": "hr_image"}])(outputs, batch)


def test_ce_on_single_logit_output_explains() -> None:
    outputs, batch = make_batch(c=2)
    outputs["seg"] = outputs["seg"][:, :1]
    with pytest.raises(DualsegError, match=r"loss term 'ce' \(output 'seg'\).*use 'bce'"):
        build_loss([{"name": "ce"}])(outputs, batch)
    with pytest.raises(DualsegError, match="use 'ce'"):
        build_loss([{"name": "bce"}])(*make_batch())


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ([{"name": "dcie"}], "unknown loss 'dcie' \\(did you mean 'dice'\\?\\)"),
        ([{"name": "ce", "wieght": 1.0}], "unknown key 'wieght' \\(did you mean 'weight'\\?\\)"),
        ([{"name": "dice", "smooth": 1.0}], "options go under 'kwargs'"),
        ([{"name": "dice", "kwargs": {"smoth": 1.0}}], "no option 'smoth' \\(did you mean 'smooth'\\?\\)"),
        ([{"name": "ce", "weight": -1}], "weight must be"),
        ([{"name": "ce", "weight": "1"}], "weight must be"),
        ([{"name": "ce", "kwargs": [1]}], "'kwargs' must be a mapping"),
        ([{"weight": 1.0}], "has no 'name'"),
        (["ce"], "must be a mapping"),
        ({"name": "ce"}, "must be a list"),
        ([], "at least one term"),
    ],
)
def test_config_errors(spec, match: str) -> None:
    with pytest.raises(DualsegError, match=match):
        build_loss(spec)


def test_list_output_sums_the_loss_over_every_item() -> None:
    outputs, batch = make_batch()
    heads = [outputs["seg"], outputs["aux_1"], outputs["seg"] * 0.5]
    loss = build_loss(
        [{"name": "dice", "output": "heads", "weight": 0.7}, {"name": "ce", "output": "heads", "weight": 0.3}]
    )
    total, values = loss({"seg": outputs["seg"], "heads": heads}, batch)
    dice = sum(DiceLoss()(h, batch["mask"], batch["fov"]) for h in heads)
    ce = sum(CrossEntropyLoss()(h, batch["mask"], batch["fov"]) for h in heads)
    assert values["dice"] == pytest.approx(dice.item(), rel=1e-6)
    assert values["ce"] == pytest.approx(ce.item(), rel=1e-6)
    torch.testing.assert_close(total, 0.7 * dice + 0.3 * ce)


def test_empty_list_output_is_an_error() -> None:
    outputs, batch = make_batch()
    with pytest.raises(DualsegError, match="empty list"):
        build_loss([{"name": "ce", "output": "heads"}])({"heads": []}, batch)
