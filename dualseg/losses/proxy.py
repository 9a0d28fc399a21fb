"""Proxy losses of DS2F's task-interaction term (Eq. 17, Tables II-III): ``ssim``, ``rmi`` and ``gdice``.

DS2F (Dual-Stream Shared Feature, TPAMI 2023, Sec. III-D) supervises the fused outputs of its shared-feature
module with "more restrictive" proxy losses: SSIM for the fused super-resolution output, region mutual
information (RMI) or generalised Dice (GDice) for the fused segmentation. All three are registered here and
follow the conventions of :mod:`dualseg.losses.segmentation` and :mod:`dualseg.losses.regression`:
``forward(output, target, valid=None)`` returns a scalar float32 tensor on the output's device.

Deliberate departures from the authors' code (see ``design/seed-methods.md`` B5):

- SSIM: the authors use ``data_range=1`` on images normalised to [-1, 1]. dualseg normalises per image (z-score
  by default), so by default the range comes from the data (the target's per-image min/max), see ``SSIMLoss``.
- RMI: the default is the sigmoid form the DS2F code trains with (0.5 BCE + 0.5 RMI on sigmoid probabilities;
  ``activation`` "softmax" / "softmax_sigmoid" are the options); the pixel term is a plain mean over valid pixels
  (the reference: sum / (N + 1)). The reference implementation (ZJULearning/RMI) casts to CPU ``double`` inside
  the loss. Here everything stays on the input's device, in float32 by default; the log-determinant is computed
  from a QR factorisation of the regularised data matrix instead of forming and inverting covariance matrices,
  which keeps float32 accurate (see ``RMILoss``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualseg.errors import DualsegError
from dualseg.losses.segmentation import check_labels, masked_mean, prepare_seg_inputs, probs_and_onehot
from dualseg.registry import LOSSES


def _positive(name: str, key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise DualsegError(f"loss '{name}': {key} must be a finite number > 0, got {value!r}")
    return float(value)


def _non_negative(name: str, key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DualsegError(f"loss '{name}': {key} must be a finite number >= 0, got {value!r}")
    return float(value)


def _int_at_least(name: str, key: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise DualsegError(f"loss '{name}': {key} must be an integer >= {low}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------------------- SSIM


@LOSSES.register("ssim")
class SSIMLoss(nn.Module):
    """``1 - mean SSIM`` (Wang et al., "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 2004) between an image output and its reference, both ``(N, C, H, W)``.

    SSIM uses a normalised ``win_size`` x ``win_size`` Gaussian window (std ``sigma``), population statistics,
    ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` and only windows that lie fully inside the image ("valid" filtering, as
    Wang et al.'s reference code); the map is averaged over channels and windows (and images). The window
    statistics are computed in float32 with the separable window (two 1D passes: the same values as MONAI's
    ``compute_ssim_and_cs``, which filters with the dense 2D window, at 2/win of its multiply-adds).

    Data range ``L``: SSIM's luminance term is not invariant to an intensity shift, and dualseg images are
    normalised per image (z-score by default: signed values, range ~ 5-10), so neither ``L = 1`` nor the raw
    values are meaningful. With ``data_range=None`` (default) each image pair is measured relative to its
    *target*: both are mapped by ``(v - min(target)) / (max(target) - min(target))`` (per sample over C, H, W;
    per sample and channel with ``per_channel=True``) and SSIM is computed with ``L = 1``. The target then spans
    exactly [0, 1], and the loss is invariant to any affine intensity change ``a v + b`` (``a > 0``) applied to
    both images, i.e. identical under z-score, [0, 1] or [-1, 1] normalisation (``per_channel=True`` extends this
    to per-channel maps such as per-channel z-score or ImageNet statistics). A constant target (range 0) uses
    range 1. A float ``data_range`` applies the standard formula to the values as given (right for
    non-negative intensities, e.g. 1.0 for [0, 1] images).

    ``valid`` (the FOV, ``(N, H, W)`` or ``(N, 1, H, W)``) restricts the mean to windows centred on valid
    pixels; a mask of any other shape (e.g. the FOV at the low input resolution) is ignored.
    """

    def __init__(
        self,
        win_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        data_range: float | None = None,
        per_channel: bool = False,
    ) -> None:
        super().__init__()
        self.win_size = _int_at_least("ssim", "win_size", win_size, 1)
        if self.win_size % 2 == 0:
            raise DualsegError(f"loss 'ssim': win_size must be odd, got {win_size}")
        self.sigma = _positive("ssim", "sigma", sigma)
        self.k1 = _positive("ssim", "k1", k1)
        self.k2 = _positive("ssim", "k2", k2)
        self.data_range = None if data_range is None else _positive("ssim", "data_range", data_range)
        self.per_channel = bool(per_channel)

    def forward(self, prediction: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        if prediction.ndim != 4 or prediction.shape != target.shape:
            raise DualsegError(
                f"loss 'ssim': prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must both be "
                "(N, C, H, W) of the same shape; an SR output must match its HR target (check data.sr.scale and "
                "the model's upscale)"
            )
        n, _, h, w = prediction.shape
        if min(h, w) < self.win_size:
            raise DualsegError(f"loss 'ssim': images of {h}x{w} are smaller than the {self.win_size}-pixel window")
        x = prediction.float()
        y = target.to(device=x.device, dtype=torch.float32)
        data_range = self.data_range
        if data_range is None:
            dims = (2, 3) if self.per_channel else (1, 2, 3)
            ref = y.detach()
            low = ref.amin(dim=dims, keepdim=True)
            span = ref.amax(dim=dims, keepdim=True) - low
            span = torch.where(span > 0, span, torch.ones_like(span))
            x, y = (x - low) / span, (y - low) / span
            data_range = 1.0
        ssim_map = self._ssim_map(x, y, data_range)
        loss_map = 1.0 - ssim_map.mean(dim=1)  # (N, H - win + 1, W - win + 1)
        v = None
        if valid is not None:
            if valid.ndim == 4 and valid.shape[1] == 1:
                valid = valid[:, 0]
            if tuple(valid.shape) == (n, h, w):
                r = self.win_size // 2
                v = valid[:, r : h - r, r : w - r].to(loss_map.device)
                v = v if v.dtype == torch.bool else v > 0.5
        return masked_mean(loss_map, v)

    def _ssim_map(self, x: Tensor, y: Tensor, data_range: float) -> Tensor:
        """The SSIM map over the valid windows, ``(N, C, H - win + 1, W - win + 1)``: the Gaussian window is
        separable, so the five window statistics are filtered by a column pass and a row pass (2 x win taps per
        pixel instead of win^2; equal to ``monai.metrics.regression.compute_ssim_and_cs``, tested)."""
        c = x.shape[1]
        taps = torch.arange(self.win_size, device=x.device, dtype=torch.float32) - (self.win_size - 1) / 2
        g = torch.exp(-0.5 * (taps / self.sigma) ** 2)
        g = g / g.sum()
        stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # 5C channels, one grouped filter for all
        with torch.autocast(x.device.type, enabled=False):  # float32 statistics under mixed precision too
            stats = F.conv2d(stats, g.view(1, 1, -1, 1).expand(5 * c, 1, -1, 1), groups=5 * c)
            stats = F.conv2d(stats, g.view(1, 1, 1, -1).expand(5 * c, 1, 1, -1), groups=5 * c)
        mu_x, mu_y, mu_xx, mu_yy, mu_xy = stats.split(c, dim=1)
        c1, c2 = (self.k1 * data_range) ** 2, (self.k2 * data_range) ** 2
        var_x, var_y, cov = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y, mu_xy - mu_x * mu_y
        contrast = (2 * cov + c2) / (var_x + var_y + c2)
        return (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * contrast

    def extra_repr(self) -> str:
        rng = "per-image target range" if self.data_range is None else self.data_range
        return f"win_size={self.win_size}, sigma={self.sigma}, k1={self.k1}, k2={self.k2}, data_range={rng}"


# ----------------------------------------------------------------------------------------------------------- RMI

RMI_ACTIVATIONS = ("sigmoid", "softmax", "softmax_sigmoid")
_DTYPES = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64, "double": torch.float64}


@LOSSES.register("rmi")
class RMILoss(nn.Module):
    """Region mutual information loss (Zhao, Cai, He, "Region Mutual Information Loss for Semantic
    Segmentation", NeurIPS 2019; reference code ZJULearning/RMI), DS2F's best proxy loss for the fused
    segmentation (Table II).

    ``bce_weight * pixel term + rmi_weight * RMI term`` (the segmentation proxy of DS2F's task-interaction loss,
    Eq. 17) with ``activation`` choosing both terms:

    - ``"sigmoid"`` (default; the reference's default ``forward_sigmoid`` and what the DS2F code trains with,
      0.5 / 0.5): pixel term = BCE with logits of every channel against the one-hot target, summed over channels;
      RMI on the per-channel sigmoid probabilities.
    - ``"softmax"``: pixel term = softmax cross entropy; RMI on the softmax probabilities. For 2 classes the
      softmax channels are complements (``p_0 = 1 - p_1``, ``y_0 = 1 - y_1``), so the two per-class RMI terms are
      equal: the sum is twice the foreground's RMI, all acting on the one logit difference ``z_1 - z_0`` (in the
      sigmoid form each channel's term acts on its own logit).
    - ``"softmax_sigmoid"``: the reference's other variant (``forward_softmax_sigmoid``): softmax cross entropy,
      RMI on the sigmoid probabilities.

    Both terms average over valid pixels; the reference divides the BCE sum by ``valid pixels + 1`` (a
    ``N / (N + 1)`` factor on the pixel term, kept out here: ``bce_weight = 0.5 N / (N + 1)`` reproduces it).
    RMI term: probabilities ``P`` and the one-hot target ``Y`` (for ``C == 1``: the sigmoid foreground
    probability and the 0/1 mask) are downsampled by ``pool`` ("avg" or "max") pooling with kernel = stride =
    ``pool_stride``, padding ``pool_stride // 2`` (1 keeps the full resolution). Every ``radius x radius``
    neighbourhood gives vectors ``y, p`` of dimension ``d = radius^2``; with the unnormalised covariance matrices
    of the centred vectors, the loss is the negative lower bound of the mutual information up to constants,
    ``0.5 log det(Sigma_y - Sigma_yp (Sigma_p + eps I)^-1 Sigma_yp^T + eps I)``, averaged over images, divided by
    ``d`` and summed over channels (``class_reduction="sum"``, as the reference; "mean" averages). The constant
    offset of 1e-6 that the reference adds to (or clamps) the probabilities is dropped: the covariances are
    centred, so it changes nothing.

    Device and precision: everything runs on the logits' device (no ``.cpu()``, no numpy), in ``dtype``
    (float32 by default; "float64" for double precision on the same device); the result is float32. The
    reference inverts ``Sigma_p + eps I`` and takes a Cholesky factor in double because, with thousands of
    points, ``eps`` is below float32 resolution relative to the unnormalised covariances. Here the same
    quantity is computed without forming them: the QR factor ``R`` of the stacked, centred data matrix
    ``[P Y; sqrt(eps) I]`` satisfies ``R^T R = [[Sigma_p + eps I, Sigma_py], [Sigma_yp, Sigma_y + eps I]]``,
    so its lower-right ``d x d`` block ``R_yy`` gives the regularised conditional covariance as ``R_yy^T R_yy``
    and ``0.5 log det = sum log |diag R_yy|``. QR is backward stable, so float32 keeps ``eps`` meaningful
    (``sqrt(eps)`` vs the data's column norms) and agrees with float64.

    ``valid`` (the FOV): probabilities and one-hot target are zeroed outside it (as the reference does for
    ignored pixels) before pooling, so outside pixels form a constant region that carries no information; the
    pixel term averages over valid pixels only.
    """

    def __init__(
        self,
        radius: int = 3,
        pool: str = "avg",
        pool_stride: int = 3,
        bce_weight: float = 0.5,
        rmi_weight: float = 0.5,
        eps: float = 5e-4,
        activation: str = "sigmoid",
        dtype: torch.dtype | str = torch.float32,
        class_reduction: str = "sum",
    ) -> None:
        super().__init__()
        self.radius = _int_at_least("rmi", "radius", radius, 1)
        if self.radius > 10:
            raise DualsegError(f"loss 'rmi': radius must be 1..10 (region vectors of radius^2 values), got {radius}")
        if pool not in ("avg", "max"):
            raise DualsegError(f"loss 'rmi': pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.pool_stride = _int_at_least("rmi", "pool_stride", pool_stride, 1)
        self.bce_weight = _non_negative("rmi", "bce_weight", bce_weight)
        self.rmi_weight = _non_negative("rmi", "rmi_weight", rmi_weight)
        if self.bce_weight == 0 and self.rmi_weight == 0:
            raise DualsegError("loss 'rmi': bce_weight and rmi_weight are both 0")
        self.eps = _positive("rmi", "eps", eps)
        if activation not in RMI_ACTIVATIONS:
            raise DualsegError(
                f"loss 'rmi': activation must be one of {', '.join(RMI_ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise DualsegError(f"loss 'rmi': dtype must be 'float32' or 'float64', got {dtype!r}")
            dtype = _DTYPES[dtype]
        if dtype not in (torch.float32, torch.float64):
            raise DualsegError(f"loss 'rmi': dtype must be torch.float32 or torch.float64, got {dtype!r}")
        self.dtype = dtype
        if class_reduction not in ("sum", "mean"):
            raise DualsegError(f"loss 'rmi': class_reduction must be 'sum' or 'mean', got {class_reduction!r}")
        self.class_reduction = class_reduction

    def forward(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        target, v = prepare_seg_inputs("rmi", logits, target, valid)
        num_classes = logits.shape[1]
        activation = self.activation
        if num_classes == 1:
            if activation != "sigmoid":
                raise DualsegError(
                    f"loss 'rmi': activation {activation!r} needs >= 2 output channels but the output has 1 (a "
                    "single sigmoid logit); use activation 'sigmoid'"
                )
            check_labels("rmi", target, 2, hint="; a single-logit output expects 0/1 masks")
            onehot = target.unsqueeze(1)
        else:
            check_labels("rmi", target, num_classes)
            onehot = F.one_hot(target, num_classes).permute(0, 3, 1, 2)

        total = logits.new_zeros((), dtype=torch.float32)
        if self.bce_weight > 0:
            z = logits.float()
            if activation != "sigmoid":
                pixel = F.cross_entropy(z, target, reduction="none")
            else:
                pixel = F.binary_cross_entropy_with_logits(z, onehot.float(), reduction="none").sum(dim=1)
            total = total + self.bce_weight * masked_mean(pixel, v)
        if self.rmi_weight > 0:
            z = logits.to(self.dtype)
            probs = torch.softmax(z, dim=1) if activation == "softmax" else torch.sigmoid(z)
            labels = onehot.to(self.dtype)
            if v is not None:
                m = v.unsqueeze(1).to(self.dtype)
                probs, labels = probs * m, labels * m
            total = total + self.rmi_weight * self.rmi_term(labels, probs).float()
        return total

    def rmi_term(self, labels: Tensor, probs: Tensor) -> Tensor:
        """The RMI term for ``(N, C, H, W)`` one-hot labels and probabilities (already masked), in their dtype."""
        s = self.pool_stride
        if s > 1:
            pool_fn = F.avg_pool2d if self.pool == "avg" else F.max_pool2d
            labels = pool_fn(labels, kernel_size=s, stride=s, padding=s // 2)
            probs = pool_fn(probs, kernel_size=s, stride=s, padding=s // 2)
        n, c, h, w = probs.shape
        r = self.radius
        if min(h, w) < r:
            raise DualsegError(
                f"loss 'rmi': the output is {h}x{w} after pooling with stride {s}, smaller than radius {r}; "
                "use a smaller pool_stride or radius"
            )
        d = r * r
        # radius x radius neighbourhoods as (N, C, d, points), positions in row-major order (as the reference)
        la = F.unfold(labels, kernel_size=r).view(n, c, d, -1)
        pr = F.unfold(probs, kernel_size=r).view(n, c, d, -1)
        la = la - la.mean(dim=-1, keepdim=True)
        pr = pr - pr.mean(dim=-1, keepdim=True)
        # rows: the centred points, then sqrt(eps) I (adds eps to both diagonal blocks of the Gram matrix)
        reg = torch.eye(2 * d, dtype=probs.dtype, device=probs.device).mul_(math.sqrt(self.eps))
        data = torch.cat([torch.cat([pr, la], dim=2).transpose(-2, -1), reg.expand(n, c, 2 * d, 2 * d)], dim=2)
        rr = torch.linalg.qr(data, mode="reduced").R  # (N, C, 2d, 2d); "r" mode has no backward
        half_logdet = torch.diagonal(rr[..., d:, d:], dim1=-2, dim2=-1).abs().log().sum(dim=-1)  # (N, C)
        per_class = half_logdet.mean(dim=0) / d
        return per_class.sum() if self.class_reduction == "sum" else per_class.mean()

    def extra_repr(self) -> str:
        return (
            f"radius={self.radius}, pool={self.pool!r}, pool_stride={self.pool_stride}, bce_weight={self.bce_weight}, "
            f"rmi_weight={self.rmi_weight}, eps={self.eps}, activation={self.activation!r}, dtype={self.dtype}, "
            f"class_reduction={self.class_reduction!r}"
        )


# ------------------------------------------------------------------------------------------------ generalised Dice


@LOSSES.register("gdice")
class GeneralizedDiceLoss(nn.Module):
    """Generalised Dice loss (Sudre et al., "Generalised Dice overlap as a deep learning loss function for highly
    unbalanced segmentations", DLMIA 2017) via ``monai.losses.GeneralizedDiceLoss``:
    ``1 - 2 sum_c w_c sum(p_c g_c) / sum_c w_c sum(p_c + g_c)`` with ``w_c = 1 / (sum g_c)^2``
    (``w_type="square"``; "simple": ``1 / sum g_c``; "uniform": 1). A class absent from an image gets the
    largest weight of the present ones (MONAI's rule); ``smooth`` is added to numerator and denominator.

    Softmax and one-hot target for ``C >= 2``; ``include_background=False`` drops channel 0. For ``C == 1`` the
    sigmoid is the foreground and, with ``include_background=True`` (default, Sudre's formulation over all
    classes), the background channel ``1 - sigmoid`` is added, so a binary model gets the same loss as the
    equivalent 2-class softmax model; with ``include_background=False`` it reduces to the foreground Dice.
    Per image, averaged over the batch, or with ``batch=True`` sums over the whole batch first. Outside
    ``valid`` both prediction and target are zeroed (as ``dice``).
    """

    def __init__(
        self, include_background: bool = True, smooth: float = 1e-5, batch: bool = False, w_type: str = "square"
    ) -> None:
        super().__init__()
        self.include_background = bool(include_background)
        self.smooth = _non_negative("gdice", "smooth", smooth)
        self.batch = bool(batch)
        if w_type not in ("square", "simple", "uniform"):
            raise DualsegError(f"loss 'gdice': w_type must be 'square', 'simple' or 'uniform', got {w_type!r}")
        self.w_type = w_type
        from monai.losses import GeneralizedDiceLoss as MonaiGeneralizedDiceLoss  # lazy: importing MONAI is slow

        self.gdice = MonaiGeneralizedDiceLoss(
            include_background=True, w_type=w_type, smooth_nr=self.smooth, smooth_dr=self.smooth, batch=self.batch
        )

    def forward(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        prob, onehot = probs_and_onehot(
            "gdice", logits, target, valid, self.include_background, binary_background=True
        )
        return self.gdice(prob, onehot)

    def extra_repr(self) -> str:
        return (
            f"include_background={self.include_background}, smooth={self.smooth}, batch={self.batch}, "
            f"w_type={self.w_type!r}"
        )
