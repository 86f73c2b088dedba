"""Balanced contrastive loss (Zhu et al., "Balanced Contrastive Learning for
Long-Tailed Visual Recognition", CVPR 2022)."""
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from ...validation import check_bool, check_number
from .gather import contrast_set, global_mean, is_distributed
from .utils import check_features_labels, log_sum_exp, loss_dtype

OWNER = 'BalancedContrastiveLoss'


@MODELS.register_module()
class BalancedContrastiveLoss(nn.Module):
    """Balanced contrastive loss (BCL): a supervised contrastive loss with
    class prototypes in the contrast set and a class-averaged denominator.

    Every row ``z_i`` (every view) is an anchor; the C prototypes ``p_c``
    are candidates only, never anchors ("class complement": every class is
    present in every batch through its prototype). The candidates ``A(i)``
    of anchor ``i`` are all rows except ``i`` plus all prototypes; its
    positives ``P(i)`` are the other rows of class ``y_i`` plus
    ``p_{y_i}``, so every anchor has a positive. ``n_c(i)`` is the number of
    candidates of class ``c`` (rows of class ``c`` other than ``i``, plus
    one for the prototype); each class weighs in the denominator by the mean
    of its terms, so that head classes do not dominate it:

    .. math::

        l_i = -\\frac{1}{|P(i)|} \\sum_{p \\in P(i)}
              \\log \\frac{\\exp(z_i \\cdot p / \\tau)}
                          {\\sum_c \\frac{1}{n_c(i)}
                           \\sum_{k \\in A(i), y_k = c}
                           \\exp(z_i \\cdot k / \\tau)}

    and the loss is the mean of ``l_i`` over the rows. The weights enter the
    log-sum-exp (row maximum subtracted) as ``-log n_c(i)``. Labels must lie
    in ``[0, C)``; they are not read back to the host to check that.

    Multi-process training: with ``gather_distributed=True`` and a process
    group of W > 1 processes, the rows and labels of all ranks are gathered
    with a gather whose backward sums gradients over ranks
    (:func:`contrast_set`), so the candidates are the rows of the whole
    global batch (plus the prototypes, once); the anchors are the local rows
    and the mean runs over the rows of all ranks (:func:`global_mean`), as
    in :class:`SupConLoss`. Every rank returns the global loss as the value,
    and a gradient that, after DDP averages gradients over the ranks, equals
    that of one process given the whole global batch (the prototypes must be
    the same on every rank), also for ranks of different sizes. With
    ``gather_distributed=False`` each rank's loss covers its own rows only.

    Args:
        temperature: tau, a finite number > 0. Defaults to 0.1.
        gather_distributed: Gather the rows of all ranks into the candidates
            when a process group is running. Defaults to True.
        loss_weight: Factor on the loss, a finite number. Defaults to 1.0.

    Raises:
        ValueError: At construction for a setting out of its range; in
            :meth:`forward` for inputs of the wrong shape or dtype.
        TypeError: At construction if ``gather_distributed`` is not a bool.
    """

    #: The fewest rows per step for a non-zero loss: one row already has its
    #: prototype as a positive and the other prototypes to contrast with.
    min_rows = 1

    def __init__(self,
                 temperature: float = 0.1,
                 gather_distributed: bool = True,
                 loss_weight: float = 1.0):
        super().__init__()
        self.temperature = check_number(
            OWNER, 'temperature', temperature, low=0, low_open=True)
        self.gather_distributed = check_bool(OWNER, 'gather_distributed',
                                             gather_distributed)
        self.loss_weight = check_number(OWNER, 'loss_weight', loss_weight)

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                prototypes: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            features: L2-normalised embeddings, shape (M, d); every view is a
                row.
            labels: Class of every row, shape (M,), in ``[0, C)``.
            prototypes: L2-normalised class prototypes, shape (C, d), the
                same on every rank.

        Returns:
            Tensor: The scalar loss, float32 or wider.

        Raises:
            ValueError: If the shapes do not fit or the labels are not
                integers.
        """
        check_features_labels(OWNER, features, labels)
        width = features.shape[1]
        if (prototypes.dim() != 2 or prototypes.shape[0] < 1
                or prototypes.shape[1] != width):
            raise ValueError(f'{OWNER}: prototypes must be (C, d) with C >= 1'
                             f' and d = {width} (the feature width); got '
                             f'prototypes {tuple(prototypes.shape)}.')
        dtype = loss_dtype(features, prototypes)
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.loss_weight * self._loss(
                features.to(dtype),
                labels.to(features.device).long(), prototypes.to(dtype))

    def _loss(self, features: torch.Tensor, labels: torch.Tensor,
              prototypes: torch.Tensor) -> torch.Tensor:
        """The unweighted loss in the dtype of ``features``."""
        gather = self.gather_distributed and is_distributed()
        contrast, contrast_labels, self_mask = contrast_set(
            features, labels, gather)
        num_classes = prototypes.shape[0]
        classes = torch.arange(num_classes, device=features.device)

        # Candidates: the (global) rows, then the prototypes.
        candidates = torch.cat([contrast, prototypes])
        candidate_labels = torch.cat([contrast_labels, classes])
        not_self = torch.cat(
            [~self_mask,
             self_mask.new_ones(self_mask.shape[0], num_classes)],
            dim=1)
        same_class = labels[:, None] == candidate_labels[None, :]
        pos_mask = same_class & not_self

        # n_c(i) for the class c of every candidate: its rows and prototype,
        # less the anchor itself in the anchor's own class (never below 1).
        class_sizes = (contrast_labels[None, :] == classes[:, None]).sum(1) + 1
        log_sizes = torch.log((class_sizes[candidate_labels][None, :] -
                               same_class.long()).to(features.dtype))

        logits = features @ candidates.t() / self.temperature
        log_denominator = log_sum_exp(
            (logits - log_sizes).masked_fill(~not_self, float('-inf')))
        log_prob = logits - log_denominator
        per_anchor = -(log_prob * pos_mask).sum(dim=1) / pos_mask.sum(dim=1)
        if not gather:  # the ranks' losses are independent of each other
            return per_anchor.sum() / max(features.shape[0], 1)
        return global_mean(per_anchor.sum(),
                           features.new_tensor(features.shape[0]))
