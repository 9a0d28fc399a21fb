"""Parity of dualseg's DRFL blocks with the authors' released code (Xu et al., EAAI 2023), and their speed.

    python benchmarks/parity/drfl_parity.py --official /tmp/drfl_official/DRFL-EAAI2023 [--no-timing]

``--official`` (or ``DRFL_OFFICIAL``) is the released folder; only its ``model/DCL.py`` is imported (it needs torch
alone; the repository's other modules import packages that are not published with it). For three blocks --
PFAM (their ``BasicBlock`` with ``EdgeAttention``), one RFTM transformer layer (``Block``; and the cross layer
``Block2``) and the Fusion Module (``Softnethead``) -- the script fills dualseg's block with seeded weights
(``seeded_state``), copies them into theirs through an explicit key map, runs both in fp32 on the same seeded
inputs in eval and train mode, forward and backward, and checks they agree. It writes what dualseg's tests need
(inputs, the authors' outputs and gradients, a checksum of the weights; no weights, which
``tests/models/test_parity_drfl.py`` regenerates with ``seeded_state``) to ``tests/fixtures/parity/drfl_*.pt``
and ``drfl_parity.json``; then times one training step (forward + backward) of each pair at the paper's sizes on
one thread and writes ``benchmarks/results/<machine>/official_compare_drfl.md``.

Shims, all outside dualseg: ``print`` in ``Block.forward`` goes to /dev/null; the Softnethead's final sigmoid is
replaced by identity (dualseg returns logits) and it is fed ``sigmoid(logits)`` (their seg head ends in a sigmoid).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from dualseg.models.blocks.pfam import PFAMBlock  # noqa: E402
from dualseg.models.blocks.transformer import TransformerBlock  # noqa: E402
from dualseg.models.drfl import CodeFusionModule  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "parity"
PFA_CODE = {"pfa_mode": "code", "pfa_pool": "global", "pfa_kernel": 3}
# fixture sizes (small: the tests rebuild these) and timing sizes (the paper's: 256 px input, 64-ch H/2 map)
PFAM_FIX = {"channels": 16, "input": (2, 16, 12, 12)}
TRANSFORMER_FIX = {"dim": 64, "heads": 4, "mlp": 128, "input": (2, 16, 64)}
FUSION_FIX = {"mask": (2, 1, 32, 32), "sr": (2, 1, 64, 64)}
# Train mode of the Fusion Module runs in float64: backpropagating through the batch statistics of its 16 BatchNorm
# layers amplifies fp32 rounding (both sides agree to ~1e-7 forward) to ~1e-3 relative in the input gradients;
# in float64 the two agree to ~1e-13, so the float64 pair is the check that the computations are the same.
FUSION_TRAIN_DTYPE = torch.float64


# ----------------------------------------------------------------------------------------------------------------
# weights: seeded, in dualseg's key space (the tests call this too)


def seeded_state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights for every entry of ``module.state_dict()`` (sorted keys, one CPU generator):
    norm scales 1 + 0.1 N, biases and running means 0.1 N, running variances U(0.5, 1.5), matrices and kernels
    N / sqrt(fan_in), scalar gates 0.1 + 0.1 N, PReLU slopes 0.25 + 0.05 N, batch counters 0."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, ref in sorted(module.state_dict().items()):
        shape, name = ref.shape, key.rsplit(".", 1)[-1]
        if name == "num_batches_tracked":
            value = torch.zeros_like(ref)
        elif name == "running_var":
            value = torch.rand(shape, generator=gen) + 0.5
        elif name in ("running_mean", "bias"):
            value = 0.1 * torch.randn(shape, generator=gen)
        elif ref.dim() == 0:
            value = 0.1 + 0.1 * torch.randn(shape, generator=gen)
        elif ref.dim() == 1 and shape[0] == 1 and name == "weight":  # PReLU slope (one shared parameter)
            value = 0.25 + 0.05 * torch.randn(shape, generator=gen)
        elif ref.dim() == 1:
            value = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            value = torch.randn(shape, generator=gen) / ref[0].numel() ** 0.5
        state[key] = value.to(ref.dtype)
    return state


def checksum(state: dict[str, torch.Tensor]) -> list[float]:
    """``[sum, sum of squares]`` over all floating-point entries: detects a change of the seeded weights."""
    flat = torch.cat([v.double().flatten() for v in state.values() if v.is_floating_point()])
    return [flat.sum().item(), flat.pow(2).sum().item()]


# ----------------------------------------------------------------------------------------------------------------
# explicit key maps: theirs -> ours


def pfam_map(theirs: str, ours: str) -> dict[str, str]:
    """``BasicBlock`` (conv1/bn1/conv2/bn2, ca = CBAM channel attention, ea = EdgeAttention) -> ``PFAMBlock``."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    pairs = {"conv1.weight": "conv1.conv.weight", "conv2.weight": "conv2.conv.weight"}
    pairs.update({f"bn1.{k}": f"conv1.norm.{k}" for k in bn})
    pairs.update({f"bn2.{k}": f"conv2.norm.{k}" for k in bn})
    pairs.update(
        {
            "ca.fc1.weight": "attention.0.mlp.0.weight",
            "ca.fc2.weight": "attention.0.mlp.2.weight",
            "ea.conv1.weight": "attention.1.peak_conv.weight",
            "ea.conv2.weight": "attention.1.fuse_conv.weight",
        }
    )
    return {theirs + k: ours + v for k, v in pairs.items()}


def block_map(cross: bool) -> dict[str, str]:
    """``Block``/``Block2`` (attention_norm, attn.query/key/value/out, g_*, ffn_norm, ffn.fc1/fc2) ->
    ``TransformerBlock``. Block2 normalises both token streams with ``attention_norm``: dualseg's cross block has
    a separate ``norm_context``, which gets the same weights."""
    pairs = {"attn.query": "attn.q", "attn.key": "attn.k", "attn.value": "attn.v", "attn.out": "attn.proj",
             "attention_norm": "norm1", "ffn_norm": "norm2", "ffn.fc1": "mlp.fc1", "ffn.fc2": "mlp.fc2"}
    out = {f"{t}.{p}": f"{o}.{p}" for t, o in pairs.items() for p in ("weight", "bias")}
    out.update({f"attn.g_{c}": f"attn.g_{c}" for c in "qkv"})
    return out


def fusion_map() -> dict[str, str]:
    """``Softnethead`` -> ``CodeFusionModule``: firstConv -> sr_down.0; encodeN (Basic + down = conv, GroupNorm with
    one group per channel, LeakyReLU) -> encoder.N-1 (PFAMBlock, conv, InstanceNorm); decodeN (Basic + up = convT,
    GroupNorm, PReLU[, Dropout]) -> decoder.stages.N-1; end.model.0 -> out."""
    out = {"firstConv.weight": "sr_down.0.weight", "end.model.0.weight": "out.weight", "end.model.0.bias": "out.bias"}
    for i in range(4):
        out.update(pfam_map(f"encode{i + 1}.Basic.", f"encoder.{i}.0."))
        out[f"encode{i + 1}.down.0.weight"] = f"encoder.{i}.1.weight"
        out.update({f"encode{i + 1}.down.1.{p}": f"encoder.{i}.2.{p}" for p in ("weight", "bias")})
        out.update(pfam_map(f"decode{i + 1}.Basic.", f"decoder.stages.{i}.0."))
        out[f"decode{i + 1}.up.0.weight"] = f"decoder.stages.{i}.1.weight"
        out.update({f"decode{i + 1}.up.1.{p}": f"decoder.stages.{i}.2.{p}" for p in ("weight", "bias")})
        out[f"decode{i + 1}.up.2.weight"] = f"decoder.stages.{i}.3.weight"
    return out


def copy_into_theirs(theirs: nn.Module, ours_state: dict[str, torch.Tensor], key_map: dict[str, str]) -> None:
    """Load ``ours_state`` into ``theirs`` through ``key_map``; every key of both sides must be mapped."""
    their_keys = set(theirs.state_dict())
    if their_keys != set(key_map):
        raise SystemExit(f"key map mismatch: unmapped {sorted(their_keys - set(key_map))[:5]}, "
                         f"unknown {sorted(set(key_map) - their_keys)[:5]}")
    missing = set(ours_state) - set(key_map.values())
    if missing:
        raise SystemExit(f"dualseg keys not mapped: {sorted(missing)[:5]}")
    theirs.load_state_dict({t: ours_state[o].clone() for t, o in key_map.items()})


# ----------------------------------------------------------------------------------------------------------------
# the authors' modules


def load_official(folder: Path) -> ModuleType:
    path = folder / "model" / "DCL.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass --official PATH/DRFL-EAAI2023 (or set DRFL_OFFICIAL)")
    spec = importlib.util.spec_from_file_location("drfl_official_dcl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vit_config(dim: int, heads: int, mlp: int) -> SimpleNamespace:
    """The fields of the TransUNet config object the release reads; dropout rates 0 (see ``block_pair``)."""
    return SimpleNamespace(hidden_size=dim, transformer={"num_heads": heads, "mlp_dim": mlp, "num_layers": 1,
                                                          "dropout_rate": 0.0, "attention_dropout_rate": 0.0})


class Quiet(nn.Module):
    """Runs a released module with stdout sent to /dev/null (``Block.forward`` calls ``print()`` twice)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.sink = open(os.devnull, "w")  # noqa: SIM115 (kept open for the module's lifetime)

    def forward(self, *args: torch.Tensor) -> Any:
        with contextlib.redirect_stdout(self.sink):
            out = self.inner(*args)
        return out[0] if isinstance(out, tuple) else out


def pfam_pair(dcl: ModuleType, channels: int, seed: int) -> tuple[nn.Module, nn.Module, dict]:
    ours = PFAMBlock(channels, "pfam", **PFA_CODE)
    state = seeded_state(ours, seed)
    ours.load_state_dict(state)
    theirs = dcl.BasicBlock(channels, channels)
    copy_into_theirs(theirs, state, pfam_map("", ""))
    return ours, theirs, state


def block_pair(dcl: ModuleType, dim: int, heads: int, mlp: int, cross: bool, seed: int):
    """dualseg ``TransformerBlock`` with frozen gates and ReLU (the release maps "gelu" to ReLU) against ``Block`` /
    ``Block2``. Dropout rates are 0 on both sides: the release's projection dropout reads the attention rate (0)
    while dualseg uses one rate for projection and MLP, so only rate-0 dropout draws are comparable."""
    ours = TransformerBlock(dim, heads, mlp / dim, drop=0.0, learnable_weights=False, cross=cross, act="relu")
    state = seeded_state(ours, seed)
    ours.load_state_dict(state)
    config = vit_config(dim, heads, mlp)
    theirs = dcl.Block2(config, False) if cross else dcl.Block(config, False)
    key_map = block_map(cross)
    if cross:
        theirs.load_state_dict({t: state[o].clone() for t, o in key_map.items()})
        ours.norm_context.load_state_dict(ours.norm1.state_dict())
        state = {k: v.clone() for k, v in ours.state_dict().items()}
    else:
        copy_into_theirs(theirs, state, key_map)
    return ours, Quiet(theirs), state


def fusion_pair(dcl: ModuleType, seed: int) -> tuple[nn.Module, nn.Module, dict]:
    ours = CodeFusionModule(1, 1, 64, 0.5, "pfam", PFA_CODE)
    state = seeded_state(ours, seed)
    ours.load_state_dict(state)
    theirs = dcl.Softnethead(5)
    copy_into_theirs(theirs, state, fusion_map())
    theirs.end.model[1] = nn.Identity()  # logits, as dualseg returns
    return ours, theirs, state


# ----------------------------------------------------------------------------------------------------------------
# runs


def run(module: nn.Module, inputs: list[torch.Tensor], weight: torch.Tensor, train: bool, seed: int,
        params: list[str], prepare: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
        param_names: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Forward (seeded: dropout draws), ``loss = sum(out * weight)``, backward. Returns the output, the input
    gradients and the gradients of ``params`` (dualseg names; ``param_names`` maps them to the module's)."""
    module.train(train)
    xs = [x.clone().requires_grad_(True) for x in inputs]
    torch.manual_seed(seed)
    out = module(*(prepare(xs) if prepare else xs))
    (out * weight).sum().backward()
    named = dict(module.named_parameters())
    res = {"out": out.detach()}
    res.update({f"grad_input{i}": x.grad.detach() for i, x in enumerate(xs)})
    for p in params:
        res[f"grad:{p}"] = named[(param_names or {}).get(p, p)].grad.detach().clone()
    module.zero_grad(set_to_none=True)
    return res


def tolerance(ref: torch.Tensor) -> dict[str, float]:
    """rtol 1e-5; atol 1e-5 x the reference's largest magnitude (summed gradients reach 1e2-1e3)."""
    return {"rtol": 1e-5, "atol": 1e-5 * max(1.0, ref.abs().max().item())}


def compare(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, float]:
    diffs = {}
    for key, ref in theirs.items():
        torch.testing.assert_close(ours[key], ref, **tolerance(ref), msg=lambda m, k=key: f"{k}: {m}")
        diffs[key] = (ours[key] - ref).abs().max().item()
    return diffs


def parity(dcl: ModuleType) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(1234)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen)

    # PFAM (BasicBlock + EdgeAttention) vs PFAMBlock(pfa_mode="code")
    ours, theirs, state = pfam_pair(dcl, PFAM_FIX["channels"], seed=1)
    x, w = randn(*PFAM_FIX["input"]), randn(*PFAM_FIX["input"])
    params = ["conv1.conv.weight", "attention.1.fuse_conv.weight"]
    inv = {v: k for k, v in pfam_map("", "").items()}
    fixture: dict[str, torch.Tensor] = {"input0": x, "weight": w}
    meta["pfam"] = {"channels": PFAM_FIX["channels"], "seed": 1, "checksum": checksum(state), "params": params}
    for mode in ("eval", "train"):
        r_theirs = run(theirs, [x], w, mode == "train", 7, params, param_names=inv)
        r_ours = run(ours, [x], w, mode == "train", 7, params)
        meta["pfam"][f"max_abs_diff_{mode}"] = max(compare(r_ours, r_theirs).values())
        fixture.update({f"{mode}/{k}": v for k, v in r_theirs.items()})
    torch.save(fixture, FIXTURES / "drfl_pfam.pt")

    # one RFTM transformer layer: Block (self) and Block2 (cross)
    f = TRANSFORMER_FIX
    fixture = {}
    meta["transformer"] = {k: f[k] for k in ("dim", "heads", "mlp")}
    meta["transformer"].update({"seed_self": 2, "seed_cross": 3})
    ours, theirs, state = block_pair(dcl, f["dim"], f["heads"], f["mlp"], cross=False, seed=2)
    seg, sr, w = randn(*f["input"]), randn(*f["input"]), randn(*f["input"])
    fixture.update({"seg": seg, "sr": sr, "weight": w})
    params = ["attn.q.weight", "mlp.fc2.weight"]
    names = {p: "inner." + {v: k for k, v in block_map(False).items()}[p] for p in params}
    meta["transformer"]["checksum_self"] = checksum(state)
    meta["transformer"]["params"] = params
    for mode in ("eval", "train"):
        r_theirs = run(theirs, [seg], w, mode == "train", 7, params, param_names=names)
        r_ours = run(ours, [seg], w, mode == "train", 7, params)
        meta["transformer"][f"max_abs_diff_{mode}"] = max(compare(r_ours, r_theirs).values())
        fixture.update({f"self/{mode}/{k}": v for k, v in r_theirs.items()})
    ours, theirs, state = block_pair(dcl, f["dim"], f["heads"], f["mlp"], cross=True, seed=3)
    meta["transformer"]["checksum_cross"] = checksum(seeded_state(ours, 3))
    with torch.no_grad():  # Block2(seg, sr): q, k from sr, v from seg, residual on seg; and both streams equal
        fixture["cross/out"] = theirs.eval()(seg, sr)
        fixture["cross/same_out"] = theirs(seg, seg)
        torch.testing.assert_close(ours.eval()(seg, seg), fixture["cross/same_out"], rtol=1e-5, atol=1e-5)
        paper_vs_code = (ours(sr, seg) - fixture["cross/out"]).abs().max().item()
        meta["transformer"]["cross_max_abs_diff_paper_vs_code"] = paper_vs_code
    torch.save(fixture, FIXTURES / "drfl_transformer.pt")

    # Fusion Module (Softnethead) vs CodeFusionModule
    ours, theirs, state = fusion_pair(dcl, seed=4)
    logits, sr_img = randn(*FUSION_FIX["mask"]), randn(*FUSION_FIX["sr"])
    w = randn(*FUSION_FIX["mask"])
    params = ["sr_down.0.weight", "out.bias", "decoder.stages.0.0.attention.1.fuse_conv.weight"]
    inv = {v: k for k, v in fusion_map().items()}
    fixture = {"input0": logits, "input1": sr_img, "weight": w}
    meta["fusion"] = {"width": 64, "seed": 4, "checksum": checksum(state), "params": params}
    meta["fusion"]["train_dtype"] = str(FUSION_TRAIN_DTYPE).replace("torch.", "")
    for mode in ("eval", "train"):
        dtype = FUSION_TRAIN_DTYPE if mode == "train" else torch.float32
        ours.to(dtype)
        theirs.to(dtype)
        inputs, wt = [logits.to(dtype), sr_img.to(dtype)], w.to(dtype)
        r_theirs = run(theirs, inputs, wt, mode == "train", 7, params,
                       prepare=lambda xs: [torch.sigmoid(xs[0]), xs[1]], param_names=inv)
        r_ours = run(ours, inputs, wt, mode == "train", 7, params)
        meta["fusion"][f"max_abs_diff_{mode}"] = max(compare(r_ours, r_theirs).values())
        fixture.update({f"{mode}/{k}": v for k, v in r_theirs.items()})
    torch.save(fixture, FIXTURES / "drfl_fusion.pt")
    return meta


# ----------------------------------------------------------------------------------------------------------------
# timing


def step_time(module: nn.Module, inputs: list[torch.Tensor], repeats: int) -> list[float]:
    module.train()
    times = []
    for _ in range(repeats):
        xs = [x.clone(memory_format=torch.preserve_format).requires_grad_(True) for x in inputs]
        start = time.perf_counter()
        module(*xs).float().pow(2).mean().backward()
        times.append((time.perf_counter() - start) * 1e3)
        module.zero_grad(set_to_none=True)
    return times


def timing(dcl: ModuleType, repeats: int) -> list[dict[str, Any]]:
    """One training step (forward + backward) per pair at the paper's sizes, alternating ours and theirs; the
    convolutional blocks also with dualseg in channels_last (``train.channels_last``, its training default)."""
    torch.manual_seed(0)
    rows = []
    pf_ours, pf_theirs, _ = pfam_pair(dcl, 64, seed=1)
    bl_ours, bl_theirs, _ = block_pair(dcl, 768, 12, 3072, cross=False, seed=2)
    fm_ours, fm_theirs, _ = fusion_pair(dcl, seed=4)
    cases = [
        ("PFAM block, 64 ch, 1x64x128x128 (H/2 of a 256 px input)", pf_ours, pf_theirs, [torch.randn(1, 64, 128, 128)]),
        ("RFTM transformer layer, 768-d, 12 heads, MLP 3072, 1x64 tokens", bl_ours, bl_theirs,
         [torch.randn(1, 64, 768)]),
        ("Fusion Module (code layout), mask 1x1x256x256 + SR 1x1x512x512", fm_ours, fm_theirs,
         [torch.randn(1, 1, 256, 256), torch.randn(1, 1, 512, 512)]),
    ]
    nhwc = [(f"{name}; ours channels_last", copy.deepcopy(ours).to(memory_format=torch.channels_last), theirs,
             [x.contiguous(memory_format=torch.channels_last) for x in inputs]) for name, ours, theirs, inputs in cases
            if inputs[0].dim() == 4]
    for name, ours, theirs, inputs in cases + nhwc:
        theirs_inputs = [x.contiguous() for x in inputs]
        step_time(ours, inputs, 2)
        step_time(theirs, theirs_inputs, 2)  # warm-up
        t_ours, t_theirs = [], []
        for _ in range(repeats):
            t_ours += step_time(ours, inputs, 1)
            t_theirs += step_time(theirs, theirs_inputs, 1)
        o, t = statistics.median(t_ours), statistics.median(t_theirs)
        rows.append({"module": name, "ours_ms": o, "theirs_ms": t, "ratio": o / t})
        print(f"{name}: ours {o:.1f} ms, theirs {t:.1f} ms, ratio {o / t:.2f}", flush=True)
    return rows


def write_timing(rows: list[dict[str, Any]], repeats: int, tag: str) -> Path:
    from dualseg.benchmark import cpu_name

    out = ROOT / "benchmarks" / "results" / tag / "official_compare_drfl.md"
    lines = [
        "# DRFL blocks: dualseg against the authors' released code (one training step)",
        "",
        f"`python benchmarks/parity/drfl_parity.py --official PATH/DRFL-EAAI2023`; CPU: {cpu_name()}; "
        f"torch {torch.__version__}; fp32; torch.set_num_threads(1); median of {repeats} forward + backward steps "
        "per side, the two sides alternating, after 2 warm-up steps each; identical weights and inputs "
        "(the parity pairs, at the paper's sizes). The authors' Block prints two blank lines per call: sent to "
        "/dev/null for both timing and parity.",
        "",
        "| module | ours ms | theirs ms | ratio ours/theirs |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['module']} | {r['ours_ms']:.1f} | {r['theirs_ms']:.1f} | {r['ratio']:.2f} |" for r in rows]
    lines += ["", "See docs/drfl.md (Parity) for what is compared; notes on the ratios follow when written by hand."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", default=os.environ.get("DRFL_OFFICIAL", "/tmp/drfl_official/DRFL-EAAI2023"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    from dualseg.benchmark import machine, machine_tag

    tag = machine_tag(machine())  # the machine's folder (its core count), before timing on one thread
    torch.set_num_threads(1)
    dcl = load_official(Path(args.official))
    FIXTURES.mkdir(parents=True, exist_ok=True)
    meta = parity(dcl)
    meta.update({"torch": torch.__version__, "dtype": "float32", "rtol": 1e-5, "atol": "1e-5 x max|reference|",
                 "official": "Rongtao-Xu/RepresentationLearning@b159cb3 DRFL-EAAI2023/model/DCL.py"})
    (FIXTURES / "drfl_parity.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))
    if not args.no_timing:
        rows = timing(dcl, args.repeats)
        print(write_timing(rows, args.repeats, tag))


if __name__ == "__main__":
    main()
