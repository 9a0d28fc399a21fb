"""Every registered model, built with its default options, keeps the parameter and buffer names and shapes that
checkpoints and packages written before the architecture redesign hold (fixture written at commit 8d506e2), so
old weights still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dualseg

COMPAT = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "compat"
KEYS = json.loads((COMPAT / "state_dict_keys.json").read_text())


def test_every_model_has_a_snapshot() -> None:
    assert sorted(KEYS) == sorted(dualseg.list_models())


@pytest.mark.parametrize("name", sorted(KEYS))
def test_state_dict_names_and_shapes_unchanged(name: str) -> None:
    with torch.device("meta"):
        model = dualseg.create_model(name)
    now = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(KEYS[name]) - set(now))[:5] == [], "names the old weights hold but the model lacks"
    assert sorted(set(now) - set(KEYS[name]))[:5] == [], "names the model has but the old weights lack"
    assert {k: s for k, s in now.items() if s != KEYS[name][k]} == {}
