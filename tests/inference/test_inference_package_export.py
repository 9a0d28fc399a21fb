"""Model packages (safetensors + model.json) and ONNX / TorchScript export, checked against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import dualseg
from dualseg.data.descriptions import DatasetDescription
from dualseg.deploy.export import export_model
from dualseg.deploy.package import save_package
from dualseg.errors import DualsegError
from dualseg.inference.loading import LoadedModel, load_inference_model
from dualseg.inference.spec import InputSpec


def test_load_model_round_trip_gives_the_checkpoints_outputs(tmp_path, ds2f_run):
    package = save_package(load_inference_model(ds2f_run), tmp_path / "pkg")
    assert sorted(p.name for p in package.iterdir()) == ["model.json", "model.safetensors"]
    reference = load_inference_model(ds2f_run).model
    from_package = dualseg.load_model(package)
    assert not from_package.training and type(from_package) is type(reference)
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(from_package(x)["seg"], reference(x)["seg"])
        assert torch.equal(dualseg.load_model(ds2f_run)(x)["seg"], reference(x)["seg"])
    for key, value in reference.state_dict().items():  # buffers too (batch-norm statistics)
        assert torch.equal(from_package.state_dict()[key], value), key
    loaded = load_inference_model(package / "model.json")
    meta = json.loads((package / "model.json").read_text())
    assert meta["model"]["name"] == "ds2f_unet" and meta["model"]["args"] == {"channels": [4, 8, 16]}
    assert meta["classes"] == ["background", "object"] and meta["model"]["size_divisor"] == 4
    assert loaded.spec.input_scale == 0.5 and loaded.spec.normalize == "zscore" and loaded.description.decode_labels(
        np.array([0, 1])).tolist() == [0, 255]


def test_broken_packages_give_clear_errors(tmp_path, unet_run, make_run):
    package = save_package(load_inference_model(unet_run), tmp_path / "pkg")
    (package / "model.safetensors").rename(tmp_path / "weights")
    with pytest.raises(DualsegError, match="has no model.safetensors"):
        dualseg.load_model(package)
    (tmp_path / "weights").rename(package / "model.safetensors")
    (package / "model.json").rename(tmp_path / "meta")
    with pytest.raises(DualsegError, match="has no model.json"):
        dualseg.load_model(package)
    other = save_package(load_inference_model(make_run(tmp_path / "wide", "unet", {"channels": [8, 16]})),
                         tmp_path / "other")
    (other / "model.safetensors").replace(package / "model.safetensors")
    (tmp_path / "meta").rename(package / "model.json")
    with pytest.raises(DualsegError, match="does not fit model 'unet'|cannot load weights"):
        dualseg.load_model(package)
    with pytest.raises(DualsegError, match="no run directory or checkpoint"):
        dualseg.load_model(tmp_path / "missing")


@pytest.mark.slow  # the torch.export based ONNX exporter takes 5-40 s per model on a shared 2-core CPU
@pytest.mark.parametrize("name", ["unet", "ds2f_unet"])
def test_onnx_export_matches_pytorch_at_other_sizes(tmp_path, name, make_run):
    loaded = load_inference_model(make_run(tmp_path / "run", name, {"channels": [4, 8, 16]}))
    record = export_model(loaded, "onnx", tmp_path / "m.onnx", size=(32, 32))
    assert record["input"]["dynamic_size"] and record["max_abs_diff_vs_pytorch"] < 1e-4
    assert json.loads((tmp_path / "m.onnx.json").read_text())["package"]["model"]["name"] == name
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 48, 80)  # batch and size other than the traced ones
    with torch.no_grad():
        expected = loaded.model(x)["seg"].numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_matches_pytorch(tmp_path, make_run):
    for name in ("unet", "ds2f_unet"):
        loaded = load_inference_model(make_run(tmp_path / name, name, {"channels": [4, 8, 16]}))
        record = export_model(loaded, "torchscript", tmp_path / f"{name}.pt", size=(32, 48))
        assert record["input"]["dynamic_size"] and record["max_abs_diff_vs_pytorch"] < 1e-5
        scripted = torch.jit.load(str(tmp_path / f"{name}.pt"))
        for x in (torch.randn(2, 1, 32, 48), torch.randn(1, 1, 48, 80)):  # the traced size and another one
            with torch.no_grad():
                expected = loaded.model(x)["seg"]
                got = scripted(x)
            assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5), name


class ValueBranch(nn.Module):
    """Control flow on tensor values: no static graph holds it."""

    in_channels, num_classes, size_divisor = 1, 2, 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.conv(x)
        return {"seg": -y if float(y.mean()) > 0 else y}


def test_a_model_that_cannot_be_exported_gives_a_clear_error(tmp_path):
    loaded = LoadedModel(ValueBranch().eval(), InputSpec(), DatasetDescription("toy", 1, ("a", "b")),
                         info={"model_name": "value_branch"})
    with pytest.raises(DualsegError, match="cannot export model 'value_branch' to onnx"):
        export_model(loaded, "onnx", tmp_path / "m.onnx", size=(16, 16))
    with pytest.raises(DualsegError, match="torchscript model .value_branch. differs .* at the traced size"):
        export_model(loaded, "torchscript", tmp_path / "m.pt", size=(16, 16))
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.pt").exists()
    with pytest.raises(DualsegError, match="unknown export format"):
        export_model(loaded, "tflite", tmp_path / "m.tflite")


@pytest.mark.parametrize("channels_last", [True, False])
def test_inference_uses_the_layout_the_run_trained_in(tmp_path, make_run, channels_last):
    run = make_run(tmp_path / "run", "unet", {"channels": [4, 8, 16]},
                   config={"train": {"precision": "fp32", "channels_last": channels_last}})
    loaded = load_inference_model(run)
    weight = next(p for p in loaded.model.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[-1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    reference = load_inference_model(run).model.to(memory_format=torch.contiguous_format)
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        expected = loaded.model(x)["seg"]
        torch.testing.assert_close(expected, reference(x)["seg"], atol=1e-4, rtol=1e-4)  # same numbers, any layout
        package = dualseg.load_model(save_package(loaded, tmp_path / "pkg"))  # packages load NHWC
        torch.testing.assert_close(package(x)["seg"], expected, atol=1e-4, rtol=1e-4)
