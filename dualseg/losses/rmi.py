"""Region mutual information loss ``rmi`` (Zhao et al., NeurIPS 2019).

Part of DS2F's task-interaction term (Dual-Stream Shared Feature, TPAMI 2023, Sec. III-D, Eq. 17, Tables
II-III), which supervises the fused outputs of its shared-feature module with "more restrictive" losses; follows
the conventions of :mod:`dualseg.losses.segmentation` and :mod:`dualseg.losses.regression`:
``forward(output, target, valid=None)`` returns a scalar float32 tensor on the output's device.

Departures from the authors' code (see ``design/seed-methods.md`` B5): the default is the sigmoid form the DS2F
code trains with (0.5 BCE + 0.5 RMI on sigmoid probabilities; ``activation`` "softmax" / "softmax_sigmoid" are the
options); the pixel term is a plain mean over valid pixels (the reference: sum / (N + 1)). The reference
implementation (ZJULearning/RMI) casts to CPU ``double`` inside the loss. Here everything stays on the input's
device, in float32 by default; the log-determinant is computed from a QR factorisation of the regularised data
matrix instead of forming and inverting covariance matrices, which keeps float32 accurate (see ``RMILoss``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualseg.errors import DualsegError
from dualseg.losses.checks import check_int_at_least, check_non_negative_number, check_positive_number
from dualseg.losses.segmentation import check_labels, masked_mean, prepare_seg_inputs
from dualseg.registry import LOSSES

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
        self.radius = check_int_at_least("rmi", "radius", radius, 1)
        if self.radius > 10:
            raise DualsegError(f"loss 'rmi': radius must be 1..10 (region vectors of radius^2 values), got {radius}")
        if pool not in ("avg", "max"):
            raise DualsegError(f"loss 'rmi': pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.pool_stride = check_int_at_least("rmi", "pool_stride", pool_stride, 1)
        self.bce_weight = check_non_negative_number("rmi", "bce_weight", bce_weight)
        self.rmi_weight = check_non_negative_number("rmi", "rmi_weight", rmi_weight)
        if self.bce_weight == 0 and self.rmi_weight == 0:
            raise DualsegError("loss 'rmi': bce_weight and rmi_weight are both 0")
        self.eps = check_positive_number("rmi", "eps", eps)
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
