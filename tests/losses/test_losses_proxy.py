"""ssim / rmi / gdice proxy losses against direct implementations of the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import correlate2d

from dualseg.errors import DualsegError
from dualseg.losses import GeneralizedDiceLoss, RMILoss, SSIMLoss, build_loss
from dualseg.registry import LOSSES


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registered() -> None:
    assert {"ssim", "rmi", "gdice"} <= set(LOSSES.names())
    assert isinstance(LOSSES.build("ssim", data_range=1.0), SSIMLoss)
    assert LOSSES.build("rmi", dtype="float64").dtype == torch.float64
    assert isinstance(LOSSES.build("gdice", include_background=False), GeneralizedDiceLoss)


# ------------------------------------------------------------------------------------------------------------ SSIM


def wang_ssim_map(x: np.ndarray, y: np.ndarray, data_range: float, win: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM map of two 2D images as in Wang et al. 2004 (Gaussian window, 'valid' filtering)."""
    ax = np.arange(win) - (win - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(a: np.ndarray) -> np.ndarray:
        return correlate2d(a, window, mode="valid")

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))


def wang_loss(x: torch.Tensor, y: torch.Tensor, data_range: float) -> float:
    maps = [
        wang_ssim_map(x[i, c].double().numpy(), y[i, c].double().numpy(), data_range)
        for i in range(x.shape[0])
        for c in range(x.shape[1])
    ]
    return 1.0 - float(np.mean(maps))


def image_pair(seed: int = 0, n: int = 2, c: int = 2, h: int = 24, w: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    y = torch.rand(n, c, h, w, generator=g)
    y = F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # some structure
    x = (y + 0.15 * torch.randn(n, c, h, w, generator=g)).clamp(0, 1)
    return x, y


def test_ssim_separable_window_equals_monais_dense_window() -> None:
    from monai.metrics.regression import compute_ssim_and_cs

    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 40, 33), torch.rand(2, 3, 40, 33)
    dense, _ = compute_ssim_and_cs(x, y, spatial_dims=2, kernel_size=(11, 11), kernel_sigma=(1.5, 1.5), data_range=1.0)
    ours = SSIMLoss(data_range=1.0)._ssim_map(x, y, 1.0)
    assert ours.shape == dense.shape == (2, 3, 30, 23)
    torch.testing.assert_close(ours, dense, rtol=1e-4, atol=1e-5)  # float32 rounding of var = E[x^2] - E[x]^2
    with torch.autocast("cpu", dtype=torch.bfloat16):  # statistics stay float32 under mixed precision
        assert SSIMLoss(data_range=1.0)._ssim_map(x, y, 1.0).dtype == torch.float32


def test_ssim_identical_is_zero() -> None:
    _, y = image_pair()
    z = (y - y.mean()) / y.std()  # z-scored, signed values
    assert SSIMLoss()(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert SSIMLoss(data_range=1.0)(y, y.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_fixed_range_matches_wang() -> None:
    x, y = image_pair()
    assert SSIMLoss(data_range=1.0)(x, y).item() == pytest.approx(wang_loss(x, y, 1.0), rel=1e-5, abs=1e-6)
    assert SSIMLoss(data_range=2.5)(x, y).item() == pytest.approx(wang_loss(x, y, 2.5), rel=1e-5, abs=1e-6)


def test_ssim_default_range_is_the_targets() -> None:
    x, y = image_pair(seed=1, n=1, c=1)
    x, y = 4 * x - 1.3, 4 * y - 1.3
    lo, span = float(y.min()), float(y.max() - y.min())
    expected = wang_loss(x - lo, y - lo, span)  # intensities from the target's minimum, L = its range
    assert SSIMLoss()(x, y).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_ssim_affine_invariance() -> None:
    x, y = image_pair(seed=2)
    base = SSIMLoss()(x, y).item()
    for a, b in ((3.7, -2.1), (0.05, 10.0)):
        assert SSIMLoss()(a * x + b, a * y + b).item() == pytest.approx(base, rel=1e-4, abs=1e-6)
    # z-score of both with the target's statistics (what dualseg's per-image normalisation does)
    assert SSIMLoss()((x - y.mean()) / y.std(), (y - y.mean()) / y.std()).item() == pytest.approx(base, rel=1e-4)
    # a fixed range is not invariant
    assert SSIMLoss(data_range=1.0)(3.7 * x - 2.1, 3.7 * y - 2.1).item() != pytest.approx(base, rel=1e-3)


def test_ssim_per_channel_range() -> None:
    x, y = image_pair(seed=3, c=3)
    a = torch.tensor([0.5, 2.0, 7.0]).view(1, 3, 1, 1)
    b = torch.tensor([-1.0, 0.3, 4.0]).view(1, 3, 1, 1)
    loss = SSIMLoss(per_channel=True)
    assert loss(a * x + b, a * y + b).item() == pytest.approx(loss(x, y).item(), rel=1e-4)
    parts = [SSIMLoss()(x[:, i : i + 1], y[:, i : i + 1]).item() for i in range(3)]
    assert loss(x, y).item() == pytest.approx(float(np.mean(parts)), rel=1e-5)


def test_ssim_valid_mask() -> None:
    x, y = image_pair(seed=4, n=1, c=1)
    valid = torch.zeros(1, 24, 20, dtype=torch.bool)
    valid[:, 4:20, 6:17] = True
    smap = wang_ssim_map(x[0, 0].double().numpy(), y[0, 0].double().numpy(), 1.0)
    centres = valid[0, 5:-5, 5:-5].numpy()
    expected = 1.0 - smap[centres].mean()
    loss = SSIMLoss(data_range=1.0)
    assert loss(x, y, valid).item() == pytest.approx(expected, rel=1e-5)
    assert loss(x, y, valid.float().unsqueeze(1)).item() == pytest.approx(expected, rel=1e-5)
    # a mask at another resolution (e.g. the LR FOV) is ignored
    assert loss(x, y, valid[:, ::2, ::2]).item() == pytest.approx(loss(x, y).item(), rel=1e-6)


def test_ssim_gradient_and_device() -> None:
    x, y = image_pair(seed=5)
    x = (x * 3 - 1).requires_grad_(True)
    out = SSIMLoss()(x, y * 3 - 1)
    out.backward()
    assert out.device == x.device and out.dtype == torch.float32 and out.ndim == 0
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ssim_constant_target_is_finite() -> None:
    x, _ = image_pair(seed=6)
    y = torch.zeros_like(x)
    assert torch.isfinite(SSIMLoss()(x, y))


def test_ssim_errors() -> None:
    x, y = image_pair()
    with pytest.raises(DualsegError, match="same shape"):
        SSIMLoss()(x, y[..., :-1])
    with pytest.raises(DualsegError, match="smaller than"):
        SSIMLoss()(x[..., :8], y[..., :8])
    for kw in ({"win_size": 10}, {"sigma": 0}, {"data_range": -1.0}, {"k1": float("nan")}):
        with pytest.raises(DualsegError):
            SSIMLoss(**kw)


# ------------------------------------------------------------------------------------------------------------- RMI


def reference_rmi(labels: torch.Tensor, probs: torch.Tensor, radius: int = 3, stride: int = 3, eps: float = 5e-4):
    """The ZJULearning/RMI lower bound in float64: Gram matrices, inverse, Cholesky; /radius^2, sum over classes."""
    labels = F.avg_pool2d(labels.double(), stride, stride, stride // 2)
    probs = F.avg_pool2d(probs.double(), stride, stride, stride // 2)
    n, c, h, w = labels.shape
    nh, nw, d = h - radius + 1, w - radius + 1, radius * radius

    def vectors(t: torch.Tensor) -> torch.Tensor:
        v = torch.stack([t[:, :, y : y + nh, x : x + nw] for y in range(radius) for x in range(radius)], dim=2)
        v = v.reshape(n, c, d, -1)
        return v - v.mean(dim=3, keepdim=True)

    la, pr = vectors(labels), vectors(probs)
    eye = torch.eye(d, dtype=torch.float64)
    pr_inv = torch.inverse(pr @ pr.transpose(2, 3) + eps * eye)
    la_pr = la @ pr.transpose(2, 3)
    appro = la @ la.transpose(2, 3) - la_pr @ pr_inv @ la_pr.transpose(2, 3)
    chol = torch.linalg.cholesky(appro + eps * eye)
    rmi_now = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # 0.5 log det
    return (rmi_now.mean(dim=0) / d).sum()


def seg_inputs(seed: int = 0, n: int = 2, c: int = 3, h: int = 30, w: int = 27):
    g = gen(seed)
    logits = torch.randn(n, c, h, w, generator=g)
    coarse = torch.randint(0, max(c, 2), (n, 1, h // 3 + 1, w // 3 + 1), generator=g).float()  # blobs
    target = F.interpolate(coarse, scale_factor=3, mode="nearest")[:, 0, :h, :w].long()
    valid = torch.rand(n, h, w, generator=g) > 0.2
    return logits, target, valid


def onehot(target: torch.Tensor, c: int) -> torch.Tensor:
    return target.unsqueeze(1).float() if c == 1 else F.one_hot(target, c).permute(0, 3, 1, 2).float()


def perfect_logits(target: torch.Tensor, c: int) -> torch.Tensor:
    return 40.0 * (2 * onehot(target, c) - 1)


@pytest.mark.parametrize(
    ("c", "activation"), [(1, "sigmoid"), (3, "sigmoid"), (2, "sigmoid"), (2, "softmax"), (2, "softmax_sigmoid")]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rmi_term_matches_reference(c: int, activation: str, dtype: torch.dtype) -> None:
    logits, target, _ = seg_inputs(seed=c, c=c)
    loss = RMILoss(bce_weight=0.0, rmi_weight=1.0, activation=activation, dtype=dtype)
    sigmoid = activation != "softmax"
    probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=1)
    expected = reference_rmi(onehot(target, c), probs).item()
    tol = 1e-6 if dtype == torch.float64 else 1e-4  # the result is float32
    assert loss(logits, target).item() == pytest.approx(expected, rel=tol, abs=tol)


def test_rmi_pixel_terms() -> None:
    """Default = the DS2F code's sigmoid form (0.5 BCE summed over channels + 0.5 RMI on sigmoids); the
    softmax forms use CE; the RMI term of the softmax form is on softmax probabilities."""
    logits, target, _ = seg_inputs(seed=7)
    sig_rmi = reference_rmi(onehot(target, 3), torch.sigmoid(logits)).item()
    soft_rmi = reference_rmi(onehot(target, 3), torch.softmax(logits, 1)).item()
    bce = F.binary_cross_entropy_with_logits(logits, onehot(target, 3), reduction="none").sum(1).mean().item()
    ce = F.cross_entropy(logits, target).item()
    assert RMILoss()(logits, target).item() == pytest.approx(0.5 * bce + 0.5 * sig_rmi, rel=1e-4)
    loss = RMILoss(bce_weight=0.3, rmi_weight=2.0)
    assert loss(logits, target).item() == pytest.approx(0.3 * bce + 2.0 * sig_rmi, rel=1e-4)
    assert RMILoss(activation="softmax")(logits, target).item() == pytest.approx(0.5 * ce + 0.5 * soft_rmi, rel=1e-4)
    mixed = RMILoss(activation="softmax_sigmoid")(logits, target).item()
    assert mixed == pytest.approx(0.5 * ce + 0.5 * sig_rmi, rel=1e-4)
    per_class_mean = RMILoss(bce_weight=0, rmi_weight=1, class_reduction="mean")(logits, target).item()
    assert per_class_mean == pytest.approx(sig_rmi / 3, rel=1e-4)


def test_rmi_two_class_softmax_counts_the_foreground_twice() -> None:
    """For 2 classes the softmax channels are complements, so the summed RMI term is 2x the foreground's
    (without pooling: the zero padding of the pooling breaks the symmetry at the border)."""
    logits, target, _ = seg_inputs(seed=8, c=2)
    fg = reference_rmi(onehot(target, 2)[:, 1:], torch.softmax(logits, 1)[:, 1:], stride=1).item()
    soft = RMILoss(activation="softmax", bce_weight=0, rmi_weight=1, pool_stride=1)(logits, target).item()
    assert soft == pytest.approx(2 * fg, rel=1e-4)
    z = logits.clone().requires_grad_(True)
    RMILoss(activation="softmax", bce_weight=0, rmi_weight=1, pool_stride=1)(z, target).backward()
    assert torch.allclose(z.grad[:, 0], -z.grad[:, 1], atol=1e-7)  # only z_1 - z_0 matters


@pytest.mark.parametrize("c", [1, 3])
def test_rmi_perfect_prediction_is_lower(c: int) -> None:
    logits, target, _ = seg_inputs(seed=11, c=c, h=60, w=60)
    loss32 = RMILoss(bce_weight=0.0, rmi_weight=1.0)
    loss64 = RMILoss(bce_weight=0.0, rmi_weight=1.0, dtype="float64")
    perfect = perfect_logits(target, c)
    good, bad = loss32(perfect, target), loss32(logits, target)
    assert good.item() < bad.item()
    # probabilities equal to the labels: the hard case for float32 (conditional covariance ~ eps)
    assert good.item() == pytest.approx(loss64(perfect, target).item(), rel=1e-3, abs=1e-3)
    assert bad.item() == pytest.approx(loss64(logits, target).item(), rel=1e-4, abs=1e-4)
    assert RMILoss()(perfect, target).item() < RMILoss()(logits, target).item()


@pytest.mark.parametrize(("c", "activation"), [(1, "sigmoid"), (3, "softmax"), (3, "sigmoid")])
def test_rmi_gradient_finite(c: int, activation: str) -> None:
    logits, target, valid = seg_inputs(seed=13, c=c)
    for x in (logits, perfect_logits(target, c) * 0.1):
        x = x.clone().requires_grad_(True)
        out = RMILoss(activation=activation)(x, target, valid)
        out.backward()
        assert torch.isfinite(out)
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_rmi_device_dtype_and_options() -> None:
    logits, target, valid = seg_inputs(seed=17)
    for kw in ({}, {"dtype": torch.float64}, {"pool": "max"}, {"pool_stride": 1, "radius": 2}):
        out = RMILoss(**kw)(logits, target, valid)
        assert out.device == logits.device and out.dtype == torch.float32 and out.ndim == 0
        assert torch.isfinite(out)


def test_rmi_valid_mask_ignores_outside() -> None:
    logits, target, valid = seg_inputs(seed=19)
    g = gen(1)
    logits2 = torch.where(valid.unsqueeze(1), logits, 5 * torch.randn(logits.shape, generator=g))
    target2 = torch.where(valid, target, torch.randint(0, 3, target.shape, generator=g))
    target2[~valid] = 7  # labels outside the FOV are never read
    loss = RMILoss()
    assert loss(logits2, target2, valid).item() == pytest.approx(loss(logits, target, valid).item(), rel=1e-6)
    masked = reference_rmi(onehot(target, 3) * valid.unsqueeze(1), torch.sigmoid(logits) * valid.unsqueeze(1))
    rmi_only = RMILoss(bce_weight=0, rmi_weight=1)(logits, target, valid).item()
    assert rmi_only == pytest.approx(masked.item(), rel=1e-4)


def test_rmi_errors() -> None:
    logits, target, _ = seg_inputs()
    with pytest.raises(DualsegError, match="softmax"):
        RMILoss(activation="softmax")(logits[:, :1], (target > 0).long())
    with pytest.raises(DualsegError, match="labels"):
        RMILoss()(logits, target + 3)
    with pytest.raises(DualsegError, match="smaller than radius"):
        RMILoss()(logits[..., :6, :6], target[..., :6, :6])
    bad = [
        {"radius": 0},
        {"pool": "median"},
        {"pool_stride": 0},
        {"eps": 0},
        {"activation": "relu"},
        {"activation": None},
        {"dtype": "float16"},
        {"bce_weight": 0, "rmi_weight": 0},
        {"class_reduction": "max"},
    ]
    for kw in bad:
        with pytest.raises(DualsegError):
            RMILoss(**kw)


# ----------------------------------------------------------------------------------------------- generalised Dice

LN3 = float(np.log(3.0))


def tiny_gdice_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    # foreground probabilities 0.75, 0.25, 0.5 on three pixels; labels 1, 0, 0
    fg_logit = torch.tensor([LN3, -LN3, 0.0])
    logits = torch.stack([torch.zeros(3), fg_logit]).view(1, 2, 1, 3)
    return logits, torch.tensor([[[1, 0, 0]]])


def test_gdice_by_hand() -> None:
    logits, target = tiny_gdice_inputs()
    # p0 = (.25, .75, .5), g0 = (0, 1, 1): tp0 = 1.25, sum p0 + sum g0 = 3.5, w0 = 1 / 2^2
    # p1 = (.75, .25, .5), g1 = (1, 0, 0): tp1 = 0.75, sum p1 + sum g1 = 2.5, w1 = 1 / 1^2
    expected = 1 - 2 * (0.25 * 1.25 + 1.0 * 0.75) / (0.25 * 3.5 + 1.0 * 2.5)
    assert GeneralizedDiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # without background: the foreground Dice 1 - 2 * 0.75 / 2.5
    loss = GeneralizedDiceLoss(include_background=False, smooth=0.0)
    assert loss(logits, target).item() == pytest.approx(1 - 1.5 / 2.5, rel=1e-6)
    # simple weights 1 / sum g
    expected = 1 - 2 * (0.5 * 1.25 + 1.0 * 0.75) / (0.5 * 3.5 + 1.0 * 2.5)
    assert GeneralizedDiceLoss(smooth=0.0, w_type="simple")(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_gdice_binary_equals_two_class() -> None:
    logits, target = tiny_gdice_inputs()
    single = logits[:, 1:] - logits[:, :1]  # sigmoid(z1 - z0) = softmax(z)[1]
    for bg in (True, False):
        two = GeneralizedDiceLoss(include_background=bg)(logits, target).item()
        assert GeneralizedDiceLoss(include_background=bg)(single, target).item() == pytest.approx(two, rel=1e-6)


def test_gdice_valid_mask_drops_pixels() -> None:
    logits, target = tiny_gdice_inputs()
    logits = torch.cat([logits, torch.tensor([3.0, -2.0]).view(1, 2, 1, 1)], dim=3)
    target = torch.cat([target, torch.tensor([[[5]]])], dim=2)  # an out-of-range label outside the FOV
    valid = torch.tensor([[[True, True, True, False]]])
    loss = GeneralizedDiceLoss(smooth=0.0)
    assert loss(logits, target, valid).item() == pytest.approx(loss(*tiny_gdice_inputs()).item(), rel=1e-6)


def test_gdice_multiclass_gradient_and_absent_class() -> None:
    logits, target, valid = seg_inputs(seed=23, c=4)  # class 3 absent from the labels
    target = target.clamp_max(2)
    x = logits.clone().requires_grad_(True)
    out = GeneralizedDiceLoss()(x, target, valid)
    out.backward()
    assert torch.isfinite(out) and 0 <= out.item() <= 1
    assert x.grad is not None and torch.isfinite(x.grad).all()
    perfect = GeneralizedDiceLoss()(perfect_logits(target, 4), target).item()
    assert perfect == pytest.approx(0.0, abs=1e-5)


def test_gdice_errors() -> None:
    logits, target, _ = seg_inputs()
    with pytest.raises(DualsegError, match="labels"):
        GeneralizedDiceLoss()(logits, target + 3)
    with pytest.raises(DualsegError):
        GeneralizedDiceLoss(w_type="cubic")


# ---------------------------------------------------------------------------------------------------- composition


def test_proxy_terms_in_a_composite_loss() -> None:
    logits, target, valid = seg_inputs(seed=29, c=2)
    g = gen(3)
    hr = torch.randn(2, 3, 30, 27, generator=g)
    outputs = {"seg": logits, "fused_seg": logits + 0.1, "sr": hr + 0.2 * torch.randn(hr.shape, generator=g)}
    batch = {"mask": target, "fov": valid, "hr_image": hr}
    loss = build_loss(
        [
            {"name": "ce"},
            {"name": "rmi", "output": "fused_seg"},
            {"name": "gdice", "output": "fused_seg", "weight": 0.5},
            {"name": "ssim", "output": "sr", "target": "hr_image", "kwargs": {"win_size": 7}},
        ]
    )
    total, values = loss(outputs, batch)
    assert set(values) == {"ce", "rmi", "gdice", "ssim"}
    assert torch.isfinite(total) and total.ndim == 0
