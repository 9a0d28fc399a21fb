"""``dualseg.benchmark`` and ``dualseg benchmark``: FLOP counts against hand formulas, scaling, keys, CLI errors."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from dualseg.benchmark import benchmark_model, count_flops
from dualseg.cli import main
from dualseg.registry import MODELS

TINY = {"channels": [8, 16, 32]}
FAST = {"warmup": 1, "repeats": 2}
KEYS = {
    "model", "model_args", "input_size", "batch", "train_batch", "device", "torch", "amp", "compile", "compile_s",
    "channels_last", "params", "params_trainable", "gflops", "gmacs", "gflops_train", "gmacs_train",
    "gflops_train_step",
    "flops_note", "latency_ms", "latency_ms_std", "train_images_per_s", "peak_memory_mb", "memory_note",
}


@pytest.fixture(scope="module")
def tiny_unet() -> dict:
    return benchmark_model("unet", input_size=(64, 64), model_args=TINY, **FAST)


def test_keys_and_units(tiny_unet):
    r = tiny_unet
    assert not KEYS - set(r)
    assert r["gflops"] == 2 * r["gmacs"] and r["gflops_train"] == 2 * r["gmacs_train"]
    assert r["params"] == r["params_trainable"] > 0
    assert r["gflops_train_step"] > 2 * r["gflops_train"]  # backward costs about twice the forward
    assert r["latency_ms"] > 0 and r["train_images_per_s"] > 0
    assert r["train_batch"] == 2  # BatchNorm in training needs more than one image
    assert set(r["peak_memory_mb"]) == {"eval", "train"} and r["memory_note"]
    assert r["device"].startswith("cpu: ") and r["input_size"] == [64, 64] and r["model_args"] == TINY
    assert r["amp"] is None and r["compile"] is False and r["compile_s"] is None


def conv_flops(c_in: int, c_out: int, k: int, h: int, w: int) -> int:
    return 2 * c_in * c_out * k * k * h * w


def test_count_flops_matches_conv_formula():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, torch.randn(1, 3, 20, 24)) == conv_flops(3, 8, 3, 20, 24)
    assert count_flops(conv, torch.randn(1, 3, 20, 24), train=True) == conv_flops(3, 8, 3, 20, 24)


class OneConv(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"seg": self.conv(x)}


@pytest.fixture
def one_conv_model():
    name = "_test_benchmark_one_conv"
    MODELS.register(name)(OneConv)
    try:
        yield name
    finally:
        MODELS._builders.pop(name, None)


def test_registered_conv_model_flops(one_conv_model):
    r = benchmark_model(one_conv_model, input_size=(32, 48), in_channels=3, num_classes=5,
                        model_args={"kernel": 5}, **FAST)
    expected = conv_flops(3, 5, 5, 32, 48)
    assert r["flops"] == expected and r["gflops"] == expected / 1e9 and r["gmacs"] == expected / 2e9
    assert r["gflops_train"] == r["gflops"]
    assert r["params"] == 3 * 5 * 5 * 5 + 5
    assert r["train_batch"] == 1  # no BatchNorm: the requested batch


def test_eval_flops_scale_with_area(tiny_unet):
    big = benchmark_model("unet", input_size=(128, 128), model_args=TINY, warmup=0, repeats=1)
    assert big["gflops"] / tiny_unet["gflops"] == pytest.approx(4.0, rel=1e-3)
    assert big["params"] == tiny_unet["params"]


def test_train_mode_runs_extra_outputs():
    r = benchmark_model("unet", input_size=(64, 64), model_args={**TINY, "deep_supervision": True},
                        warmup=0, repeats=1)
    assert r["gflops_train"] > r["gflops"]  # the auxiliary heads only run in training


def test_cli_json(capsys):
    rc = main(["benchmark", "unet", "--input-size", "64x64", "--json", "--model-args", json.dumps(TINY),
               "--warmup", "0", "--repeats", "1"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("params", "gmacs", "gflops", "gmacs_train", "latency_ms", "device"):
        assert key in r
    assert r["input_size"] == [64, 64] and r["model_args"] == TINY


def test_cli_table(capsys):
    rc = main(["benchmark", "unet", "--input-size", "64", "--model-args", json.dumps(TINY), "--warmup", "0",
               "--repeats", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "GMACs eval" in out and "1x64x64" in out


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("size", ["64by64", "x64", "0x64", "64x", ""])
def test_cli_bad_input_size(capsys, size):
    assert "--input-size" in one_line_error(capsys, ["benchmark", "unet", "--input-size", size])


def test_cli_bad_model_args(capsys):
    assert "not valid JSON" in one_line_error(capsys, ["benchmark", "unet", "--model-args", "{channels: [8]}"])
    assert "JSON object" in one_line_error(capsys, ["benchmark", "unet", "--model-args", "[8, 16]"])


def test_cli_size_the_model_cannot_take(capsys):
    err = one_line_error(capsys, ["benchmark", "unet", "--input-size", "62", "--model-args", json.dumps(TINY)])
    assert "divisible by 4" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cli_cuda_without_gpu(capsys):
    assert "no CUDA GPU" in one_line_error(capsys, ["benchmark", "unet", "--device", "cuda"])


def test_cpu_fused_attention_is_counted_like_the_explicit_matmuls():
    """torch's counter has no formula for the CPU flash-attention kernel (0 FLOPs without dualseg's mapping)."""

    class Attention(nn.Module):
        def forward(self, x):
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    x = torch.randn(2, 1, 96, 16)
    fused = count_flops(Attention(), x)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):  # decomposes into counted bmm calls
        explicit = count_flops(Attention(), x)
    assert fused == explicit == 2 * 2 * 2 * 96 * 96 * 16  # QK^T and AV, batch 2
    assert count_flops(Attention(), x.requires_grad_(), train=True, backward=True) > 3 * fused


def test_channels_last_layout_same_counts():
    nhwc = benchmark_model("unet", input_size=(64, 64), model_args=TINY, channels_last=True, **FAST)
    nchw = benchmark_model("unet", input_size=(64, 64), model_args=TINY, **FAST)
    assert nhwc["channels_last"] is True and nchw["channels_last"] is False
    assert nhwc["gmacs"] == nchw["gmacs"] and nhwc["params"] == nchw["params"]


def test_machine_tag_separates_cpu_kinds():
    from dualseg.benchmark import machine_tag

    base = {"gpu": None, "cores": 2}
    assert machine_tag({**base, "cpu_kind": "AVX512+amx"}) == "cpu-2core"
    assert machine_tag({**base, "cpu_kind": "AVX512+bf16"}) == "cpu-2core-avx512-bf16"  # AMD Zen 4: no AMX
    assert machine_tag({**base, "cpu_kind": "AVX512"}) == "cpu-2core-avx512"
    assert machine_tag({**base, "cpu_kind": "AVX2"}) == "cpu-2core-avx2"
    assert machine_tag({**base, "cpu": "x"}) == "cpu-2core"  # records written before cpu_kind existed
    assert machine_tag({**base, "gpu": "NVIDIA H200"}) == "nvidia-h200"
