"""DRFL blocks against the authors' released code, through the fixtures of benchmarks/parity/drfl_parity.py.

The fixtures hold the release's outputs and gradients for seeded inputs; the weights are regenerated here with the
script's ``seeded_state`` (checked by checksum) in dualseg's key space. Nothing of the authors' code is imported.
Regenerate: ``python benchmarks/parity/drfl_parity.py --official PATH/DRFL-EAAI2023`` (docs/drfl.md, "Parity").
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

from dualseg.models.blocks.pfam import PFAMBlock
from dualseg.models.blocks.transformer import TransformerBlock
from dualseg.models.drfl import CodeFusionModule

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
META = json.loads((FIXTURES / "drfl_parity.json").read_text())


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("drfl_parity", ROOT / "benchmarks" / "parity" / "drfl_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _script()


def _load(name: str) -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / f"drfl_{name}.pt", weights_only=True)


def _seeded(module: torch.nn.Module, seed: int, expected_checksum: list[float]) -> torch.nn.Module:
    state = P.seeded_state(module, seed)
    assert P.checksum(state) == pytest.approx(expected_checksum, rel=1e-12)  # same weights as the fixture's
    module.load_state_dict(state)
    return module


def _check(result: dict[str, torch.Tensor], fixture: dict[str, torch.Tensor], prefix: str) -> None:
    expected = {k[len(prefix) :]: v for k, v in fixture.items() if k.startswith(prefix)}
    assert set(expected) == set(result) and "out" in expected and "grad_input0" in expected
    for key, ref in expected.items():
        torch.testing.assert_close(result[key], ref, **P.tolerance(ref), msg=lambda m, k=key: f"{prefix}{k}: {m}")


def test_parity_fixtures_are_small_and_complete() -> None:
    files = sorted(FIXTURES.glob("drfl_*"))
    assert {f.name for f in files} == {"drfl_fusion.pt", "drfl_parity.json", "drfl_pfam.pt", "drfl_transformer.pt"}
    assert sum(f.stat().st_size for f in files) <= 1_000_000
    assert META["dtype"] == "float32" and META["rtol"] == 1e-5 and META["fusion"]["train_dtype"] == "float64"
    for name in ("pfam", "fusion"):
        fixture = _load(name)
        assert {"eval/out", "train/out", "eval/grad_input0", "train/grad_input0"} <= set(fixture)
        assert all(f"train/grad:{p}" in fixture for p in META[name]["params"])


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_pfam_parity_with_basicblock_edgeattention(mode: str) -> None:
    """PFAMBlock(pfa_mode='code') = BasicBlock + EdgeAttention: forward, input and parameter gradients."""
    meta, fixture = META["pfam"], _load("pfam")
    block = _seeded(PFAMBlock(meta["channels"], "pfam", pfa_mode="code"), meta["seed"], meta["checksum"])
    result = P.run(block, [fixture["input0"]], fixture["weight"], mode == "train", 7, meta["params"])
    _check(result, fixture, f"{mode}/")


def test_pfam_paper_mode_differs_from_release_parity() -> None:
    """Eq. 14-15 (spatial avgpool, Concat with F) is dualseg's default and not the release's channel mean."""
    meta, fixture = META["pfam"], _load("pfam")
    code = _seeded(PFAMBlock(meta["channels"], "pfam", pfa_mode="code"), meta["seed"], meta["checksum"]).eval()
    paper = PFAMBlock(meta["channels"], "pfam", pfa_mode="paper").eval()
    shared = {k: v for k, v in code.state_dict().items() if "fuse_conv" not in k}
    paper.load_state_dict(shared, strict=False)
    with torch.no_grad():
        paper.attention[1].fuse_conv.weight.zero_()
        paper.attention[1].fuse_conv.weight[:, 0] = code.attention[1].fuse_conv.weight[:, 0]  # Conv(F_peak) tap
        torch.testing.assert_close(code(fixture["input0"]), fixture["eval/out"], **P.tolerance(fixture["eval/out"]))
        gap = (paper(fixture["input0"]) - fixture["eval/out"]).abs().max()
    assert gap > 1e-2


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_transformer_layer_parity_with_block(mode: str) -> None:
    """TransformerBlock (frozen gates, ReLU MLP) = the release's Block (pre-norm weighted MHA + MLP, Eq. 11-12)."""
    meta, fixture = META["transformer"], _load("transformer")
    block = TransformerBlock(meta["dim"], meta["heads"], meta["mlp"] / meta["dim"], learnable_weights=False,
                             act="relu")
    _seeded(block, meta["seed_self"], meta["checksum_self"])
    result = P.run(block, [fixture["seg"]], fixture["weight"], mode == "train", 7, meta["params"])
    _check(result, fixture, f"self/{mode}/")
    gelu = TransformerBlock(meta["dim"], meta["heads"], meta["mlp"] / meta["dim"], learnable_weights=False).eval()
    gelu.load_state_dict(block.state_dict())
    with torch.no_grad():  # dualseg's default GELU (paper) is not the release's ReLU
        assert (gelu(fixture["seg"]) - fixture["self/eval/out"]).abs().max() > 1e-3


def test_cross_layer_parity_and_its_deliberate_difference() -> None:
    """Block2 takes query AND key from the SR tokens and updates the seg tokens; dualseg's cross block takes the
    query from H_sr and key/value from H_seg (Sec. 3.2) and updates the SR tokens. With one token stream for both
    the two are the same computation, which pins the weights and the shared LayerNorm."""
    meta, fixture = META["transformer"], _load("transformer")
    block = TransformerBlock(meta["dim"], meta["heads"], meta["mlp"] / meta["dim"], learnable_weights=False,
                             cross=True, act="relu")
    _seeded(block, meta["seed_cross"], meta["checksum_cross"]).eval()
    block.norm_context.load_state_dict(block.norm1.state_dict())  # Block2 normalises both streams with one LN
    seg, sr = fixture["seg"], fixture["sr"]
    with torch.no_grad():
        torch.testing.assert_close(block(seg, seg), fixture["cross/same_out"], **P.tolerance(fixture["cross/out"]))
        assert (block(sr, seg) - fixture["cross/out"]).abs().max() > 1.0


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_fusion_module_parity_with_softnethead(mode: str) -> None:
    """CodeFusionModule = Softnethead (4-level U-Net of PFAM stages) fed sigmoid(logits), without its last
    sigmoid; eval in fp32, train (batch statistics + seeded Dropout 0.5) in float64 (see the script)."""
    meta, fixture = META["fusion"], _load("fusion")
    fm = _seeded(CodeFusionModule(1, 1, meta["width"], 0.5, "pfam", P.PFA_CODE), meta["seed"], meta["checksum"])
    inputs, weight = [fixture["input0"], fixture["input1"]], fixture["weight"]
    if mode == "train":
        fm.to(torch.float64)
        inputs, weight = [x.double() for x in inputs], weight.double()
    result = P.run(fm, inputs, weight, mode == "train", 7, meta["params"])
    _check(result, fixture, f"{mode}/")
