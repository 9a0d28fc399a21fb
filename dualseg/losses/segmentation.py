"""Segmentation losses on ``(N, C, H, W)`` logits and ``(N, H, W)`` class-index masks.

Every loss is an ``nn.Module`` with ``forward(logits, target, valid=None)``. ``valid`` (bool or 0/1, ``(N, H, W)``)
marks the pixels that count (e.g. the field of view); pixels outside contribute nothing and their labels are
never read. ``C == 1`` means one sigmoid logit (labels 0/1), ``C >= 2`` softmax over ``C`` classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualseg.errors import DualsegError
from dualseg.registry import LOSSES


def prepare_seg_inputs(name: str, logits: Tensor, target: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Check shapes; return the ``(N, H, W)`` long target (0 outside ``valid``) and the bool valid mask or None."""
    if logits.ndim != 4:
        raise DualsegError(f"loss '{name}' expects (N, C, H, W) logits, got shape {tuple(logits.shape)}")
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise DualsegError(
            f"loss '{name}': target mask shape {tuple(target.shape)} does not match the output "
            f"{tuple(logits.shape)}; expected {expected}"
        )
    target = (target.round() if target.is_floating_point() else target).to(device=logits.device, dtype=torch.long)
    v = None
    if valid is not None:
        if valid.ndim == 4 and valid.shape[1] == 1:
            valid = valid[:, 0]
        if tuple(valid.shape) != expected:
            raise DualsegError(
                f"loss '{name}': valid (FOV) mask shape {tuple(valid.shape)} does not match the output "
                f"{tuple(logits.shape)}; expected {expected}"
            )
        v = valid.to(target.device) if valid.dtype == torch.bool else valid.to(target.device) > 0.5
        target = torch.where(v, target, torch.zeros_like(target))
    return target, v


def check_labels(name: str, target: Tensor, num_labels: int, hint: str = "") -> None:
    """Raise DualsegError when ``target`` holds values outside ``0..num_labels-1``."""
    if target.numel() == 0:
        return
    lo, hi = (int(x) for x in torch.aminmax(target))
    if lo < 0 or hi >= num_labels:
        raise DualsegError(
            f"loss '{name}': mask holds labels {lo}..{hi} but the output has {num_labels} classes "
            f"(labels 0..{num_labels - 1}){hint}"
        )


def masked_mean(loss: Tensor, valid: Tensor | None, weight: Tensor | None = None) -> Tensor:
    """``sum(w * loss) / sum(w)`` over valid pixels (``loss`` already weighted); 0 when no pixel is valid."""
    if valid is None and weight is None:
        return loss.mean()
    denom = torch.ones_like(loss) if weight is None else weight
    if valid is not None:
        loss = loss * valid
        denom = denom * valid
    return loss.sum() / denom.sum().clamp_min(torch.finfo(loss.dtype).tiny)


def probs_and_onehot(
    name: str, logits: Tensor, target: Tensor, valid: Tensor | None, include_background: bool,
    binary_background: bool = False,
) -> tuple[Tensor, Tensor]:
    """Probabilities and one-hot target for region losses, zeroed outside ``valid``.

    C == 1: sigmoid and the 0/1 target (with ``binary_background`` also the background channel 1 - p, so a binary
    model gets the loss of the equivalent 2-class model). C >= 2: softmax and one-hot; ``include_background=False``
    drops class 0.
    """
    target, v = prepare_seg_inputs(name, logits, target, valid)
    num_classes = logits.shape[1]
    logits = logits.float()
    if num_classes == 1:
        check_labels(name, target, 2, hint="; a single-logit output expects 0/1 masks")
        prob = torch.sigmoid(logits)
        onehot = target.unsqueeze(1).to(prob.dtype)
        if binary_background and include_background:
            prob, onehot = torch.cat([1 - prob, prob], dim=1), torch.cat([1 - onehot, onehot], dim=1)
    else:
        check_labels(name, target, num_classes)
        prob = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, num_classes).permute(0, 3, 1, 2).to(prob.dtype)
        if not include_background:
            prob, onehot = prob[:, 1:], onehot[:, 1:]
    if v is not None:
        m = v.unsqueeze(1).to(prob.dtype)
        prob, onehot = prob * m, onehot * m
    return prob, onehot


@LOSSES.register("ce")
class CrossEntropyLoss(nn.Module):
    """Softmax cross entropy for ``C >= 2`` outputs, averaged over valid pixels.

    ``class_weights`` (one per class) weight each pixel by its target class and the mean divides by the summed
    weights, as ``torch.nn.functional.cross_entropy``. ``label_smoothing`` in [0, 1).
    """

    def __init__(self, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise DualsegError(f"loss 'ce': label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor([float(w) for w in class_weights], dtype=torch.float32)
            if weights.ndim != 1 or len(weights) < 2 or bool((weights < 0).any()):
                raise DualsegError(f"loss 'ce': class_weights must be >= 2 non-negative numbers, got {class_weights}")
        self.class_weights: Tensor | None
        self.register_buffer("class_weights", weights)

    def forward(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        num_classes = logits.shape[1] if logits.ndim == 4 else 0
        if num_classes == 1:
            raise DualsegError(
                "loss 'ce' needs a softmax output with >= 2 channels but the output has 1 channel (a single sigmoid "
                "logit); use 'bce' for a binary model, or build the model with num_classes >= 2"
            )
        target, v = prepare_seg_inputs("ce", logits, target, valid)
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        if weight is not None and len(weight) != num_classes:
            raise DualsegError(f"loss 'ce': {len(weight)} class_weights for an output with {num_classes} classes")
        check_labels("ce", target, num_classes)
        loss = F.cross_entropy(
            logits.float(), target, weight=weight, label_smoothing=self.label_smoothing, reduction="none"
        )
        return masked_mean(loss, v, None if weight is None else weight[target])


@LOSSES.register("bce")
class BinaryCrossEntropyLoss(nn.Module):
    """Binary cross entropy with logits for a single-logit (``C == 1``) output and 0/1 masks.

    ``pos_weight`` multiplies the loss of foreground pixels (as in ``BCEWithLogitsLoss``).
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        pw = None
        if pos_weight is not None:
            if float(pos_weight) <= 0:
                raise DualsegError(f"loss 'bce': pos_weight must be > 0, got {pos_weight}")
            pw = torch.tensor(float(pos_weight))
        self.pos_weight: Tensor | None
        self.register_buffer("pos_weight", pw)

    def forward(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        if logits.ndim == 4 and logits.shape[1] != 1:
            raise DualsegError(
                f"loss 'bce' needs a single-logit output (num_classes=1) but the output has {logits.shape[1]} "
                "channels; use 'ce' for a softmax output"
            )
        target, v = prepare_seg_inputs("bce", logits, target, valid)
        check_labels("bce", target, 2, hint="; 'bce' expects 0/1 masks")
        loss = F.binary_cross_entropy_with_logits(
            logits[:, 0].float(),
            target.float(),
            pos_weight=None if self.pos_weight is None else self.pos_weight.to(logits.device),
            reduction="none",
        )
        return masked_mean(loss, v)


@LOSSES.register("dice")
class DiceLoss(nn.Module):
    """Soft Dice loss ``1 - (2 sum(p g) + smooth) / (sum p + sum g + smooth)`` via ``monai.losses.DiceLoss``.

    Sigmoid for ``C == 1`` (the single channel is the foreground), softmax and one-hot target for ``C >= 2``,
    where ``include_background=False`` drops channel 0. The loss is averaged over images and channels, or, with
    ``batch=True``, sums are taken over the whole batch first (batch Dice). Outside ``valid`` both prediction
    and target are zeroed. ``squared=True`` squares the denominator terms, ``sum p^2 + sum g^2`` (EFEN Eq. 11, with
    ``smooth=1`` the paper's Laplace term theta).
    """

    def __init__(
        self, include_background: bool = False, smooth: float = 1e-5, batch: bool = False, squared: bool = False
    ) -> None:
        super().__init__()
        if float(smooth) < 0:
            raise DualsegError(f"loss 'dice': smooth must be >= 0, got {smooth}")
        self.include_background = bool(include_background)
        self.smooth = float(smooth)
        self.batch = bool(batch)
        self.squared = bool(squared)
        from monai.losses import DiceLoss as MonaiDiceLoss  # lazy: importing MONAI takes seconds

        self.dice = MonaiDiceLoss(
            include_background=True,
            smooth_nr=self.smooth,
            smooth_dr=self.smooth,
            batch=self.batch,
            squared_pred=self.squared,
        )

    def forward(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        prob, onehot = probs_and_onehot("dice", logits, target, valid, self.include_background)
        return self.dice(prob, onehot)

    def extra_repr(self) -> str:
        return (
            f"include_background={self.include_background}, smooth={self.smooth}, batch={self.batch}, "
            f"squared={self.squared}"
        )
