"""Generalised Dice loss ``gdice`` (Sudre et al., DLMIA 2017).

Part of DS2F's task-interaction term (Dual-Stream Shared Feature, TPAMI 2023, Sec. III-D, Eq. 17, Tables
II-III), which supervises the fused outputs of its shared-feature module with "more restrictive" losses; follows
the conventions of :mod:`dualseg.losses.segmentation` and :mod:`dualseg.losses.regression`:
``forward(output, target, valid=None)`` returns a scalar float32 tensor on the output's device.
"""

from __future__ import annotations

from torch import Tensor, nn

from dualseg.errors import DualsegError
from dualseg.losses.checks import check_non_negative_number
from dualseg.losses.segmentation import probs_and_onehot
from dualseg.registry import LOSSES


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
        self.smooth = check_non_negative_number("gdice", "smooth", smooth)
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
