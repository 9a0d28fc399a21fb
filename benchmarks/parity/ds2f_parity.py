"""Parity of dualseg's DS2F parts with the authors' released code (Qsingle/imed_vision), and their CPU cost.

For MRCAB (code ``RCAB``), MS-Conv (``MSConv2d``), MSCG (``CrossGL``), the RMI loss (``forward_sigmoid`` and
``forward_softmax_sigmoid``), the SSIM loss (``SSIMLoss``, pytorch_msssim) and the U-Net + SR model (``Unet``,
``base_ch=4``): build both sides, fill the authors' module with seeded weights (rounded to float16 values, so they
are stored exactly), copy them to ours through an explicit key map, run both in fp32 in eval and train mode,
forward and backward, and write ``tests/fixtures/parity/ds2f_parity.safetensors`` (our weights, inputs, their
outputs and gradients) + ``ds2f_parity.json``. The tests (``tests/models/test_parity_ds2f.py``) need neither this
script nor the authors' code. Then one training step (forward + backward) of each part is timed, ours vs theirs,
at identical weights and input, into ``benchmarks/results/<machine>/official_compare_ds2f.md``.

    git --git-dir=/work/.mirror/Qsingle+imed_vision/repo archive HEAD | tar -x -C /tmp/imed_vision
    pip install --target /tmp/pylib_msssim --no-deps pytorch-msssim==1.0.0
    python benchmarks/parity/ds2f_parity.py --code /tmp/imed_vision --extra-path /tmp/pylib_msssim

Only the needed modules of their package are imported (stub parent packages, no ``__init__`` side effects);
``collections.Iterable`` is restored for their ``layernorm.py`` on Python >= 3.10.
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import importlib
import json
import platform
import re
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from dualseg.benchmark import machine, machine_tag  # noqa: E402
from dualseg.losses.rmi import RMILoss  # noqa: E402
from dualseg.losses.ssim import SSIMLoss  # noqa: E402
from dualseg.models.blocks.ds2f import MRCAB, MSConv, MultiScaleCrossGate  # noqa: E402
from dualseg.models.ds2f import ds2f_unet as DS2FUNet  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "parity" / "ds2f_parity.safetensors"


# --------------------------------------------------------------------------------------------- their code, imported
def load_theirs(code: Path) -> dict[str, types.ModuleType]:
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]  # their layernorm.py
    root = code / "imed_vision"
    for name, sub in [("imed_vision", ""), ("imed_vision.layers", "layers"), ("imed_vision.loss", "loss"),
                      ("imed_vision.models", "models"), ("imed_vision.models.segmentation", "models/segmentation")]:
        stub = types.ModuleType(name)
        stub.__path__ = [str(root / sub)]
        sys.modules[name] = stub
    names = {"tf": "imed_vision.layers.task_fusion", "rmi": "imed_vision.loss.rmi", "ssim": "imed_vision.loss.ssim",
             "unet": "imed_vision.models.segmentation.unet"}
    return {k: importlib.import_module(v) for k, v in names.items()}


# ------------------------------------------------------------------------------------------------- seeded weights
@torch.no_grad()
def fill(module: nn.Module, seed: int) -> None:
    """Seeded, non-trivial weights and BN statistics, rounded to float16 values (exactly storable)."""
    g = torch.Generator().manual_seed(seed)

    def r(t: torch.Tensor, scale: float, shift: float = 0.0, uniform: bool = False) -> None:
        v = torch.rand(t.shape, generator=g) if uniform else torch.randn(t.shape, generator=g)
        t.copy_((shift + scale * v).half().float())

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            r(m.weight, m.weight[0].numel() ** -0.5)
            if m.bias is not None:
                r(m.bias, 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            r(m.weight, 0.1, 1.0)
            r(m.bias, 0.1)
            r(m.running_mean, 0.1)
            r(m.running_var, 0.5, 0.75, uniform=True)


# ------------------------------------------------------------------------------------------- explicit key mapping
Rule = tuple[str, str]  # (their key regex, our key template)


def swap_halves(w: torch.Tensor, first: int) -> torch.Tensor:
    """Input channels [a (first), b] -> [b, a]: their concatenation order -> ours."""
    return torch.cat([w[:, first:], w[:, :first]], dim=1)


MRCAB_RULES: list[Rule] = [(r"conv(\d)\.(weight|bias)", r"conv\1.\2"), (r"se\.0\.(weight|bias)", r"attention.fc1.\1"),
                           (r"se\.2\.(weight|bias)", r"attention.fc2.\1")]
MSCONV_RULES: list[Rule] = [(r"(convs\.\d\..*|norm\..*)", r"\1")]
MSCG_RULES: list[Rule] = (
    [(r"fusion_conv\.0\.weight", "fuse.conv.weight"), (r"fusion_conv\.1\.(.*)", r"fuse.norm.\1")]
    + [(r"fusion_conv\.3\.rcab\." + a, "gate.attention." + b) for a, b in MRCAB_RULES]
    + [(r"fusion_conv\.3\.msconv\." + a, "gate.context." + b) for a, b in MSCONV_RULES]
    + [(r"linear_cross_(seg|sr)\.0\.(.*)", r"to_\1.conv.\2"), (r"gate_(seg|sr)\.(.*)", r"out_\1.\2")]
)
UNET_RULES: list[Rule] = (
    [(r"down1\.conv\.conv(\d)\.(conv|norm_layer)\.(.*)", "backbone.encoder.stages.0.{c}.{n}.\\3")]
    + [(rf"down{i}\.conv\.conv(\d)\.(conv|norm_layer)\.(.*)", f"backbone.encoder.stages.{i - 1}.1.{{c}}.{{n}}.\\3")
       for i in (2, 3, 4)]
    + [(r"down5\.conv(\d)\.(conv|norm_layer)\.(.*)", "backbone.encoder.stages.4.1.{c}.{n}.\\3")]
    + [(rf"{p}up{6 + k}\.upsample_conv\.(conv|norm_layer)\.(.*)", f"{d}_decoder.stages.{k}.up.post.{{n1}}.\\2")
       for p, d in (("", "seg"), ("sr_", "sr")) for k in range(4)]
    + [(rf"{p}up{6 + k}\.conv\.conv(\d)\.(conv|norm_layer)\.(.*)", f"{d}_decoder.stages.{k}.conv.{{c}}.{{n}}.\\3")
       for p, d in (("", "seg"), ("sr_", "sr")) for k in range(4)]
    + [(r"out_conv\.(.*)", r"seg_head.\1"), (r"sr_module\.(.*)", r"sr_head.\1")]
    + [(r"sr_seg_fusion_module\." + a, "sfem." + b) for a, b in MSCG_RULES]
)


def map_key(key: str, rules: list[Rule]) -> str | None:
    for pattern, template in rules:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        out = m.expand(template.replace("{c}", "X").replace("{n}", "Y").replace("{n1}", "Z"))
        groups = m.groups()
        if "{c}" in template:  # conv index: theirs conv1/conv2 -> ours 0/1; norm_layer -> norm
            kind = "norm" if groups[1] == "norm_layer" else "conv"
            out = out.replace("X", str(int(groups[0]) - 1)).replace("Y", kind)
        if "{n1}" in template:
            out = out.replace("Z", "norm" if groups[0] == "norm_layer" else "conv")
        return out
    return None


def to_ours(theirs: dict[str, torch.Tensor], rules: list[Rule], fix: Callable | None = None) -> dict[str, torch.Tensor]:
    """Their state dict in our key space (every key must map; biases folded / channels permuted by ``fix``)."""
    ours = {}
    for key, value in theirs.items():
        mapped = map_key(key, rules)
        if mapped is None:
            if key.endswith("fusion_conv.0.bias"):  # folded into the next BN's running mean by ``fix``
                continue
            raise KeyError(f"no mapping for their key {key}")
        ours[mapped] = value.clone()
    if fix is not None:
        fix(theirs, ours)
    return ours


def fix_mscg(prefix_theirs: str, prefix_ours: str, half: int) -> Callable:
    """Concat order (SR, seg) -> (seg, SR) in the fuse conv; their fuse-conv bias into our BN running mean."""

    def fix(theirs: dict, ours: dict) -> None:
        ours[prefix_ours + "fuse.conv.weight"] = swap_halves(theirs[prefix_theirs + "fusion_conv.0.weight"], half)
        bias = theirs[prefix_theirs + "fusion_conv.0.bias"]
        ours[prefix_ours + "fuse.norm.running_mean"] = theirs[prefix_theirs + "fusion_conv.1.running_mean"] - bias

    return fix


def fix_unet(theirs: dict, ours: dict) -> None:
    fix_mscg("sr_seg_fusion_module.", "sfem.", theirs["sr_seg_fusion_module.gate_sr.weight"].shape[0])(theirs, ours)
    for d in ("seg", "sr"):  # their decoder concatenates (upsampled, skip); ours (skip, upsampled)
        for k in range(4):
            key = f"{d}_decoder.stages.{k}.conv.0.conv.weight"
            up = ours[f"{d}_decoder.stages.{k}.up.post.conv.weight"].shape[0]
            ours[key] = swap_halves(ours[key], up)


def load_checked(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    result = module.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result


# ----------------------------------------------------------------------------------------------------- run + record
def run(fn: Callable, inputs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Outputs of ``fn(**inputs)`` (a tensor, tuple or dict) and the input gradients of 0.5 * sum(outputs^2)."""
    xs = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
    out = fn(**xs)
    outs = out if isinstance(out, dict) else {"out": out} if torch.is_tensor(out) else dict(enumerate(out))
    outs = {str(k): v for k, v in outs.items()}
    sum(0.5 * v.float().square().sum() for v in outs.values()).backward()
    grads = {k: x.grad.detach().clone() for k, x in xs.items() if x.grad is not None}
    return {k: v.detach().clone() for k, v in outs.items()}, grads


def record(store: dict, name: str, state: dict | None, inputs: dict, theirs_fn: Callable, module: nn.Module | None,
           modes=("eval", "train"), param_grads: dict[str, str] | None = None) -> None:
    if state is not None:
        for k, v in state.items():
            store[f"{name}/state/{k}"] = v.half() if torch.equal(v.half().float(), v) else v
    for k, v in inputs.items():
        store[f"{name}/input/{k}"] = v
    for mode in modes:
        if module is not None:
            module.train(mode == "train")
            module.zero_grad(set_to_none=True)
        outs, grads = run(theirs_fn, inputs)
        for k, v in outs.items():
            store[f"{name}/{mode}/out/{k}"] = v
        for k, v in grads.items():
            store[f"{name}/{mode}/grad/{k}"] = v
        params = dict(module.named_parameters()) if module is not None else {}
        for ours_key, theirs_key in (param_grads or {}).items():
            if params[theirs_key].grad is not None:  # eval mode: the SR stream and MSCG do not run
                store[f"{name}/{mode}/pgrad/{ours_key}"] = params[theirs_key].grad.clone()


def blobs(g: torch.Generator, n: int, h: int, w: int) -> torch.Tensor:
    coarse = torch.randint(0, 2, (n, 1, h // 4, w // 4), generator=g).float()
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="nearest")[:, 0].long()


def build_fixture(theirs: dict) -> tuple[dict, dict]:
    tf, unet, rmi, ssim = theirs["tf"], theirs["unet"], theirs["rmi"], theirs["ssim"]
    g = torch.Generator().manual_seed(0)
    store: dict[str, torch.Tensor] = {}
    meta: dict = {"parts": {}}

    mrcab = tf.RCAB(32, 4)
    fill(mrcab, 1)
    record(store, "mrcab", to_ours(mrcab.state_dict(), MRCAB_RULES), {"x": torch.randn(2, 32, 8, 8, generator=g)},
           lambda x: mrcab(x), mrcab)
    meta["parts"]["mrcab"] = {"theirs": "layers/task_fusion.py RCAB(32, reduction=4)", "ours": "MRCAB(32, 4)"}

    msconv = tf.MSConv2d(32, 4)
    fill(msconv, 2)
    state = to_ours(msconv.state_dict(), MSCONV_RULES)
    record(store, "msconv", state, {"x": torch.randn(2, 32, 8, 8, generator=g)}, lambda x: msconv(x), msconv)
    folded = {k: v for k, v in state.items() if not k.startswith("norm.")}  # default MSConv: no BN on the pool group
    std = (state["norm.running_var"][24:] + msconv.norm.eps).sqrt()
    scale = state["norm.weight"][24:] / std
    folded.update({f"norm.{k}": state[f"norm.{k}"][:24] for k in ("weight", "bias", "running_mean", "running_var")})
    folded["norm.num_batches_tracked"] = state["norm.num_batches_tracked"]
    folded["convs.3.conv.weight"] = state["convs.3.conv.weight"] * scale[:, None, None, None]
    folded["convs.3.conv.bias"] = (state["convs.3.conv.bias"] - state["norm.running_mean"][24:]) * scale + state[
        "norm.bias"][24:]
    for k, v in folded.items():
        store[f"msconv_default/state/{k}"] = v
    meta["parts"]["msconv"] = {"theirs": "MSConv2d(32, groups=4)", "ours": "MSConv(32, 4, pool_norm=True)",
                               "msconv_default": "MSConv(32, 4) with the pooled group's eval-mode BN folded into "
                                                 "its 1x1 conv"}

    mscg = tf.CrossGL(8, 8)
    fill(mscg, 3)
    record(store, "mscg", to_ours(mscg.state_dict(), MSCG_RULES, fix_mscg("", "", 8)),
           {"f_seg": torch.randn(2, 8, 8, 8, generator=g), "f_sr": torch.randn(2, 8, 8, 8, generator=g)},
           lambda f_seg, f_sr: tuple(reversed(mscg(f_sr, f_seg))), mscg)
    meta["parts"]["mscg"] = {"theirs": "CrossGL(sr_ch=8, seg_ch=8, hidden 32)",
                             "ours": "MultiScaleCrossGate(8, 8, msconv_pool_norm=True)", "outputs": "0 = seg, 1 = sr"}

    model = unet.Unet(3, 2, super_reso=True, upscale_rate=2, sr_layer=5, sr_seg_fusion=True, before=True, base_ch=4)
    fill(model, 4)
    grads = {"backbone.encoder.stages.0.0.conv.weight": "down1.conv.conv1.conv.weight", "seg_head.weight":
             "out_conv.weight", "sr_head.0.weight": "sr_module.0.weight",
             "sfem.gate.context.convs.1.weight": "sr_seg_fusion_module.fusion_conv.3.msconv.convs.1.weight"}
    # (not the pooled 1x1 conv: under the code's BN, its 2 spatially constant values per channel make its gradient
    # ill-conditioned, ~1e-4 relative in fp32 between any two summation orders)

    def model_fn(x: torch.Tensor):
        out = model(x)
        if torch.is_tensor(out):
            return {"seg": out}
        return dict(zip(("seg", "sr", "proxy_seg", "proxy_sr"), out))

    record(store, "ds2f_unet", to_ours(model.state_dict(), UNET_RULES, fix_unet),
           {"x": torch.randn(2, 3, 16, 16, generator=g)}, model_fn, model, param_grads=grads)
    meta["parts"]["ds2f_unet"] = {
        "theirs": "Unet(3, 2, super_reso=True, upscale_rate=2, sr_layer=5, sr_seg_fusion=True, before=True, "
                  "base_ch=4)",
        "ours": "DS2FUNet(3, 2, channels=(4, 8, 16, 32, 64), upscale=2, msconv_pool_norm=True, align_corners=True)"}

    logits = torch.randn(2, 2, 32, 32, generator=g) * 2
    target = blobs(g, 2, 32, 32)
    rmi_theirs = rmi.RMILoss(num_classes=2, rmi_pool_way=1)
    store["rmi/input/logits"], store["rmi/input/target"] = logits, target.to(torch.uint8)
    for form in ("sigmoid", "softmax_sigmoid"):
        fn = getattr(rmi_theirs, f"forward_{form}")
        outs, grads = run(lambda logits, target, fn=fn: fn(logits, target), {"logits": logits, "target": target})
        store[f"rmi/{form}/loss"], store[f"rmi/{form}/grad"] = outs["out"], grads["logits"]
    meta["parts"]["rmi"] = {"theirs": "RMILoss(num_classes=2, rmi_pool_way=1 (average pooling, as the training "
                                      "script)).forward_sigmoid / forward_softmax_sigmoid",
                            "ours": "RMILoss(activation='sigmoid' | 'softmax_sigmoid')", "valid_pixels": 2 * 32 * 32}

    hr = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    sr = (hr + 0.3 * torch.randn(2, 3, 32, 32, generator=g)).clamp(-1, 1)
    ssim_theirs = ssim.SSIMLoss(data_range=1, channel=3)
    record(store, "ssim", None, {"sr": sr, "hr": hr}, lambda sr, hr: ssim_theirs(sr, hr), None, modes=("train",))
    meta["parts"]["ssim"] = {"theirs": "SSIMLoss(data_range=1, channel=3) (pytorch_msssim 1.0.0), images in [-1, 1]",
                             "ours": "SSIMLoss(data_range=1.0)"}
    return store, meta


# ----------------------------------------------------------------------------------------------------------- timing
def step_ms(fn: Callable, inputs: dict, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        xs = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
        t0 = time.perf_counter()
        out = fn(**xs)
        outs = out.values() if isinstance(out, dict) else [out] if torch.is_tensor(out) else out
        sum(o.float().mean() for o in outs).backward()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_parts(theirs: dict, reps: int) -> list[tuple[str, str, float, float]]:
    tf, unet, rmi, ssim = theirs["tf"], theirs["unet"], theirs["rmi"], theirs["ssim"]
    g = torch.Generator().manual_seed(1)
    rows = []

    def pair(name: str, size: str, ours_fn: Callable, theirs_fn: Callable, inputs: dict) -> None:
        step_ms(ours_fn, inputs, 1), step_ms(theirs_fn, inputs, 1)  # warm-up
        a, b = [], []
        for _ in range(reps):  # interleaved, so a load change on the shared machine hits both
            a += step_ms(ours_fn, inputs, 1)
            b += step_ms(theirs_fn, inputs, 1)
        rows.append((name, size, statistics.median(a), statistics.median(b)))

    for name, theirs_m, ours_m, rules, size in [
        ("MRCAB", tf.RCAB(32, 4), MRCAB(32, 4), MRCAB_RULES, (2, 32, 128, 128)),
        ("MS-Conv", tf.MSConv2d(32, 4), MSConv(32, 4, pool_norm=True), MSCONV_RULES, (2, 32, 128, 128)),
    ]:
        fill(theirs_m, 5)
        load_checked(ours_m, to_ours(theirs_m.state_dict(), rules))
        theirs_m.train(), ours_m.train()
        pair(name, "x".join(map(str, size)), lambda x, m=ours_m: m(x), lambda x, m=theirs_m: m(x),
             {"x": torch.randn(*size, generator=g)})
    mscg_t, mscg_o = tf.CrossGL(64, 64), MultiScaleCrossGate(64, 64, msconv_pool_norm=True)
    fill(mscg_t, 6)
    load_checked(mscg_o, to_ours(mscg_t.state_dict(), MSCG_RULES, fix_mscg("", "", 64)))
    feats = {"f_seg": torch.randn(2, 64, 128, 128, generator=g), "f_sr": torch.randn(2, 64, 128, 128, generator=g)}
    pair("MSCG", "2x(64+64)x128x128", lambda f_seg, f_sr: mscg_o(f_seg, f_sr),
         lambda f_seg, f_sr: mscg_t(f_sr, f_seg), feats)
    model_t = unet.Unet(3, 2, super_reso=True, upscale_rate=2, sr_layer=5, sr_seg_fusion=True, before=True, base_ch=16)
    model_o = DS2FUNet(3, 2, channels=(16, 32, 64, 128, 256), msconv_pool_norm=True, align_corners=True)
    fill(model_t, 7)
    load_checked(model_o, to_ours(model_t.state_dict(), UNET_RULES, fix_unet))
    model_t.train(), model_o.train()
    pair("U-Net + SR (DS2F), widths 16-256", "2x3x128x128", lambda x: model_o(x), lambda x: model_t(x),
         {"x": torch.randn(2, 3, 128, 128, generator=g)})
    logits = {"logits": torch.randn(2, 2, 256, 256, generator=g), "target": blobs(g, 2, 256, 256)}
    ours_rmi, theirs_rmi = RMILoss(activation="sigmoid"), rmi.RMILoss(num_classes=2, rmi_pool_way=1)
    pair("RMI loss (sigmoid form)", "2x2x256x256", lambda logits, target: ours_rmi(logits, target),
         lambda logits, target: theirs_rmi(logits, target), logits)
    hr = torch.rand(2, 3, 256, 256, generator=g) * 2 - 1
    images = {"sr": (hr + 0.1 * torch.randn(2, 3, 256, 256, generator=g)).clamp(-1, 1), "hr": hr}
    ours_ssim, theirs_ssim = SSIMLoss(data_range=1.0), ssim.SSIMLoss(data_range=1, channel=3)
    pair("SSIM loss", "2x3x256x256", lambda sr, hr: ours_ssim(sr, hr), lambda sr, hr: theirs_ssim(sr, hr), images)
    return rows


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_report(rows: list, threads: int, reps: int, commit: str) -> str:
    lines = [
        "# DS2F: dualseg vs the authors' code (Qsingle/imed_vision), one training step on the CPU",
        "",
        f"`python benchmarks/parity/ds2f_parity.py` (authors' code at commit {commit}). CPU: {cpu_model()}; "
        f"torch {torch.__version__}; fp32; {threads} thread(s) (`torch.set_num_threads`); one training step = "
        "forward + backward of `sum(mean(outputs))` in train mode, identical weights and input on both sides; "
        f"median of {reps} interleaved repetitions after one warm-up, on a 2-core machine shared with other jobs.",
        "",
        "| module | input | ours ms | theirs ms | ratio ours/theirs |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {s} | {a:.1f} | {b:.1f} | {a / b:.2f} |" for n, s, a, b in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", type=Path, default=Path("/tmp/imed_vision"), help="extracted imed_vision repository")
    p.add_argument("--extra-path", action="append", default=[], help="sys.path entries for their deps (msssim)")
    p.add_argument("--commit", default="91776aa", help="the authors' commit, for the report")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-timing", action="store_true")
    args = p.parse_args()
    sys.path[:0] = args.extra_path
    tag = machine_tag(machine())  # the machine's folder (its core count), before timing on fixed threads
    torch.set_num_threads(args.threads)
    theirs = load_theirs(args.code)
    store, meta = build_fixture(theirs)
    meta.update(commit=args.commit, torch=torch.__version__, dtype="float32",
                regenerate="python benchmarks/parity/ds2f_parity.py --code /tmp/imed_vision --extra-path "
                           "/tmp/pylib_msssim (docs/ds2f.md)")
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().clone() for k, v in store.items()}, str(FIXTURE))
    FIXTURE.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1024:.0f} KiB, {len(store)} tensors)")
    if not args.no_timing:
        rows = time_parts(theirs, args.reps)
        report = REPO / "benchmarks" / "results" / tag / "official_compare_ds2f.md"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(write_report(rows, args.threads, args.reps, args.commit))
        print(report.read_text())


if __name__ == "__main__":
    main()
