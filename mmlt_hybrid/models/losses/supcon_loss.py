"""Supervised contrastive loss (Khosla et al. 2020, the L_out form)."""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from ...validation import check_number
from .gather import contrast_set, global_mean, is_distributed
from .utils import check_features_labels, log_sum_exp, loss_dtype


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
        loss_weight: Factor on the loss, a finite number. Defaults to 1.0.

    Raises:
        ValueError: At construction for a setting out of its range; in
            :meth:`forward` for features or labels of the wrong shape or
            dtype.
    """

    #: The fewest rows per step for a non-zero loss: one row has no
    #: positive, two are a positive pair with nothing to contrast it with.
    min_rows = 3

    def __init__(self,
                 temperature: float = 0.1,
                 base_temperature: Optional[float] = None,
                 gather_distributed: bool = True,
                 loss_weight: float = 1.0):
        super().__init__()
        owner = 'SupConLoss'
        self.temperature = check_number(
            owner, 'temperature', temperature, low=0, low_open=True)
        self.base_temperature = None if base_temperature is None else \
            check_number(owner, 'base_temperature', base_temperature, low=0,
                         low_open=True)
        self.gather_distributed = bool(gather_distributed)
        self.loss_weight = check_number(owner, 'loss_weight', loss_weight)

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
        check_features_labels('SupConLoss', features, labels)
        labels = labels.to(features.device)
        # float32 (or float64 when given), outside any autocast region.
        features = features.to(loss_dtype(features))
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.loss_weight * self._loss(features, labels)

    def _loss(self, features: torch.Tensor,
              labels: torch.Tensor) -> torch.Tensor:
        """The unweighted loss in the dtype of ``features``."""

        gather = self.gather_distributed and is_distributed()
        # self_mask[i, k]: row k of the contrast set is anchor i itself.
        contrast, contrast_labels, self_mask = contrast_set(
            features, labels, gather)
        num_global = contrast.shape[0]
        pos_mask = (labels[:, None] == contrast_labels[None, :]) & ~self_mask
        num_pos = pos_mask.sum(dim=1)
        valid = num_pos > 0

        # Every anchor is computed and those without positives are masked
        # out, so nothing is read back to the host. With more than one row
        # every anchor has another row in its denominator: all finite.
        if num_global <= 1:
            return contrast.sum() * 0.0
        logits = features @ contrast.t() / self.temperature
        log_prob = logits - log_sum_exp(
            logits.masked_fill(self_mask, float('-inf')))
        mean_log_prob_pos = (log_prob * pos_mask).sum(dim=1) / \
            num_pos.clamp(min=1).to(features.dtype)
        per_anchor = -mean_log_prob_pos * valid
        if self.base_temperature is not None:
            per_anchor = per_anchor * (
                self.temperature / self.base_temperature)
        if not gather:  # the ranks' losses are independent of each other
            return per_anchor.sum() / valid.sum().clamp(min=1)
        return global_mean(per_anchor.sum(), valid.sum())
