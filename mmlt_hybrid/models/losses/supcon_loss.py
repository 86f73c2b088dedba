"""Supervised contrastive loss (Khosla et al. 2020, the L_out form)."""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from .gather import (all_gather_no_grad, all_gather_with_grad, global_mean,
                     is_distributed)


def check_temperature(name: str, value, owner: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0.

    Args:
        name: Name of the argument, for the error message.
        value: The value to check.
        owner: Class name, for the error message.

    Returns:
        float: The value.

    Raises:
        TypeError: If the value is not a real number.
        ValueError: If it is not finite or not positive.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'{owner}: {name}={value!r} must be a number > 0.')
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f'{owner}: {name}={value!r} is not allowed; it must be a finite '
            'number > 0.')
    return float(value)


def check_features_labels(features: torch.Tensor, labels: torch.Tensor,
                          owner: str) -> None:
    """Check that ``features`` is (M, d) and ``labels`` is (M,) integer."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        shape = tuple(features.shape) if isinstance(
            features, torch.Tensor) else type(features).__name__
        raise ValueError(
            f'{owner}: features must be a 2-d tensor (M, d), got {shape}.')
    if (not isinstance(labels, torch.Tensor) or labels.dim() != 1
            or labels.shape[0] != features.shape[0]):
        shape = tuple(labels.shape) if isinstance(
            labels, torch.Tensor) else type(labels).__name__
        raise ValueError(
            f'{owner}: labels must be a 1-d tensor with one label per row of '
            f'features ({features.shape[0]}), got {shape}.')
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(
            f'{owner}: labels must be an integer tensor, got {labels.dtype}.')


@MODELS.register_module()
class SupConLoss(nn.Module):
    """Supervised contrastive loss, the "L_out" form of Khosla et al. (2020).

    Every row of ``features`` is an anchor. For anchor ``i`` with label
    ``y_i``, the positives ``P(i)`` are the other rows with the same label
    (other views of the same image included) and ``A(i)`` is every row except
    ``i``:

    .. math::

        l_i = -\\frac{1}{|P(i)|} \\sum_{p \\in P(i)}
              \\log \\frac{\\exp(z_i \\cdot z_p / \\tau)}
                          {\\sum_{a \\in A(i)} \\exp(z_i \\cdot z_a / \\tau)}

    The loss is the mean of ``l_i`` over the anchors that have at least one
    positive. **An anchor without positives contributes nothing and is not
    counted in the mean**; when no anchor has a positive the loss is 0 (a
    zero connected to the graph, never NaN). The row maximum is subtracted
    before the exponential (log-sum-exp) and ``i`` is excluded from its own
    denominator. Views are simply more rows with the same label.

    Multi-process training: with ``gather_distributed=True`` and a process
    group of W > 1 processes, the embeddings and labels of all ranks are
    gathered with a gather whose backward sums gradients over ranks
    (:func:`all_gather_with_grad`), so the contrast set ``A(i)`` is the whole
    global batch. Each rank uses its own rows as anchors; the mean runs over
    the valid anchors of all ranks (:func:`global_mean`). Every rank returns
    the global loss as the value, and a gradient that, after DDP averages
    gradients over the ranks, equals that of one process given the whole
    global batch, also when the ranks hold different numbers of valid
    anchors. With ``gather_distributed=False`` each rank's loss covers its
    own rows only.

    Args:
        temperature: tau, a finite number > 0. Defaults to 0.1.
        base_temperature: If given, the loss is multiplied by
            ``temperature / base_temperature`` (the scaling of some public
            implementations, usually with 0.07). Defaults to None (no
            factor).
        gather_distributed: Gather the embeddings of all ranks into the
            contrast set when a process group is running. Defaults to True.
        loss_weight: Factor on the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 base_temperature: Optional[float] = None,
                 gather_distributed: bool = True,
                 loss_weight: float = 1.0):
        super().__init__()
        self.temperature = check_temperature('temperature', temperature,
                                             'SupConLoss')
        self.base_temperature = None if base_temperature is None else \
            check_temperature('base_temperature', base_temperature,
                              'SupConLoss')
        if isinstance(loss_weight, bool) or not isinstance(
                loss_weight, (int, float)) or not math.isfinite(loss_weight):
            raise ValueError(
                f'SupConLoss: loss_weight={loss_weight!r} must be a finite '
                'number.')
        self.gather_distributed = bool(gather_distributed)
        self.loss_weight = float(loss_weight)

    def forward(self, features: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            features: L2-normalised embeddings, shape (M, d); every view is a
                row.
            labels: Class label of every row, shape (M,).

        Returns:
            Tensor: The scalar loss.
        """
        check_features_labels(features, labels, 'SupConLoss')
        labels = labels.to(features.device)
        # Exponentials and counts need more than half precision: compute in
        # float32 (or float64 when given) outside any autocast region.
        if features.dtype in (torch.float16, torch.bfloat16):
            features = features.float()
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.loss_weight * self._loss(features, labels)

    def _loss(self, features: torch.Tensor,
              labels: torch.Tensor) -> torch.Tensor:
        """The unweighted loss in the dtype of ``features``."""

        gather = self.gather_distributed and is_distributed()
        if gather:
            contrast, offset = all_gather_with_grad(features)
            contrast_labels = all_gather_no_grad(labels)
        else:
            contrast, offset = features, 0
            contrast_labels = labels

        num_local = features.shape[0]
        num_global = contrast.shape[0]
        # self_mask[i, k]: row k of the contrast set is anchor i itself.
        self_index = torch.arange(num_local, device=features.device) + offset
        self_mask = torch.zeros(
            num_local, num_global, dtype=torch.bool, device=features.device)
        self_mask[torch.arange(num_local, device=features.device),
                  self_index] = True
        pos_mask = (labels[:, None] == contrast_labels[None, :]) & ~self_mask
        num_pos = pos_mask.sum(dim=1)
        valid = num_pos > 0

        # Every anchor is computed and those without positives are masked
        # out, so nothing is read back to the host. With more than one row
        # every anchor has another row in its denominator: all finite.
        if num_global <= 1:
            return contrast.sum() * 0.0
        logits = features @ contrast.t() / self.temperature
        masked = logits.masked_fill(self_mask, float('-inf'))
        row_max = masked.max(dim=1, keepdim=True).values.detach()
        log_denominator = torch.log(
            torch.exp(masked - row_max).sum(dim=1, keepdim=True)) + row_max
        log_prob = logits - log_denominator
        mean_log_prob_pos = (log_prob * pos_mask).sum(dim=1) / \
            num_pos.clamp(min=1).to(features.dtype)
        per_anchor = -mean_log_prob_pos * valid
        if self.base_temperature is not None:
            per_anchor = per_anchor * (self.temperature /
                                       self.base_temperature)
        if not gather:  # the ranks' losses are independent of each other
            return per_anchor.sum() / valid.sum().clamp(min=1)
        return global_mean(per_anchor.sum(), valid.sum())
