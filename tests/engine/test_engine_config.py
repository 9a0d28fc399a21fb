"""Config validation: clear errors for unknown keys, wrong types, bad values; overrides; shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualseg.config import apply_overrides, dump_config, load_config, parse_override
from dualseg.errors import DualsegError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochz=3", "unknown config key 'train.epochz' (did you mean 'epochs'?)"),
        ("modle.name=unet", "unknown config key 'modle' (did you mean 'model'?)"),
        ("train.epochs=abc", "train.epochs: expected int"),
        ("train.epochs=2.5", "train.epochs: expected int"),
        ("train.amp_typo=true", "unknown config key"),
        ("train.deterministic=maybe", "train.deterministic: expected true or false"),
        ("train.optimizer.name=adamx", "'adamx' is not one of sgd, adam, adamw (did you mean 'adam'?)"),
        ("train.batch_size=0", "train.batch_size must be a positive integer"),
        ("train.epochs=-1", "train.epochs must be a positive integer"),
        ("train.optimizer.lr=0", "lr must be positive"),
        ("data.patch_size=[256]", "data.patch_size must be two positive integers"),
        ("model.args=3", "model.args: expected a mapping"),
        ("loss=[]", "loss must list at least one term"),
        ("data.sr.interpolation=cubic", "data.sr.interpolation: 'cubic' is not one of area, bicubic, bilinear"),
    ],
)
def test_config_errors(override, message):
    with pytest.raises(DualsegError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_overrides_parse_yaml_values():
    assert parse_override("train.epochs=5") == (["train", "epochs"], 5)
    assert parse_override("data.patch_size=[64, 32]") == (["data", "patch_size"], [64, 32])
    assert parse_override("train.grad_clip=null") == (["train", "grad_clip"], None)
    assert parse_override("data.root=/a=b") == (["data", "root"], "/a=b")
    with pytest.raises(DualsegError, match="KEY=VALUE"):
        parse_override("train.epochs")
    merged = apply_overrides({"train": {"epochs": 1}}, ["train.batch_size=3"])
    assert merged == {"train": {"epochs": 1, "batch_size": 3}}


def test_ints_become_floats_and_dump_roundtrips(tmp_path):
    cfg = load_config(None, ["train.optimizer.lr=1", "data.augment.scale=[0.9, 1.1]"])
    assert cfg.train.optimizer.lr == 1.0 and isinstance(cfg.train.optimizer.lr, float)
    assert cfg.data.augment.scale == (0.9, 1.1)
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert dump_config(load_config(path)) == dump_config(cfg)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_configs_are_valid(path):
    cfg = load_config(path, ["data.root=/elsewhere", "train.epochs=1", "output_dir=/tmp/x"])
    assert cfg.data.root == "/elsewhere" and cfg.train.epochs == 1 and cfg.output_dir == "/tmp/x"


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(DualsegError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(DualsegError, match="not valid YAML"):
        load_config(bad)
