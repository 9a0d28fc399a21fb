"""deeplabv3plus ``pretrained_path``: offline loading of encoder weights from a local file."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import dualseg
from dualseg.errors import DualsegError


def build(**kw: object) -> torch.nn.Module:
    kw = {"in_channels": 1, "num_classes": 2, "encoder": "resnet18", "decoder_channels": 16, **kw}
    return dualseg.create_model("deeplabv3plus", **kw)


def assert_same_encoder(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_path_round_trip(tmp_path: Path, suffix: str) -> None:
    source = build()
    path = tmp_path / f"encoder{suffix}"
    state = {k: v.contiguous() for k, v in source.encoder.state_dict().items()}
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    fresh = build()
    assert not torch.equal(fresh.encoder.conv1.weight, source.encoder.conv1.weight)
    loaded = build(pretrained_path=path)
    assert_same_encoder(source, loaded)


def test_pretrained_path_from_full_dualseg_state_dict(tmp_path: Path) -> None:
    source = build()
    torch.save({"model": source.state_dict()}, tmp_path / "ckpt.pt")
    assert_same_encoder(source, build(pretrained_path=str(tmp_path / "ckpt.pt")))


def test_pretrained_path_timm_classifier_weights_adapted_to_one_channel(tmp_path: Path) -> None:
    # what an offline ImageNet file looks like: a full 3-channel timm ResNet with its fc classifier
    full = timm.create_model("resnet18", pretrained=False)
    torch.save(full.state_dict(), tmp_path / "resnet18.pth")
    model = build(pretrained_path=tmp_path / "resnet18.pth")
    torch.testing.assert_close(model.encoder.conv1.weight, full.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.encoder.layer4[1].conv2.weight, full.layer4[1].conv2.weight)


def test_pretrained_path_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DualsegError, match="does not exist"):
        build(pretrained_path=tmp_path / "nope.pth")


def test_pretrained_path_wrong_architecture(tmp_path: Path) -> None:
    torch.save(build().encoder.state_dict(), tmp_path / "r18.pth")
    with pytest.raises(DualsegError, match="do not match"):
        build(encoder="resnet34", pretrained_path=tmp_path / "r18.pth")


def test_pretrained_path_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DualsegError, match="cannot read"):
        build(pretrained_path=tmp_path / "junk.pth")
