"""Class-prior cross-entropy: logit adjustment and balanced softmax.

:class:`ClassPriorMixin` holds a module's per-class training counts in a
buffer (saved in checkpoints) and follows the class-counts protocol of
:class:`~mmlt_hybrid.engine.hooks.ClassCountsHook`, which fills counts that
the config leaves out from the training set.
"""
import logging
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmpretrain.models.losses.cross_entropy_loss import (
    cross_entropy,
    soft_cross_entropy,
)
from mmpretrain.registry import MODELS

from ...validation import check_counts, check_number

#: What to do about a class without training images (it has no prior).
_NO_PRIOR = (' (a class without training images has no prior): give every '
             'class a training image, or give class_counts=[...] yourself')


def check_class_counts(owner: str, counts) -> List[int]:
    """``counts`` as a list of ints, one integer > 0 per class
    (:func:`~mmlt_hybrid.validation.check_counts`)."""
    return check_counts(owner, 'class_counts', counts, 1, _NO_PRIOR)


class ClassPriorMixin:
    """Per-class training counts in a buffer, for an :class:`nn.Module`.

    Call :meth:`_init_class_counts` in ``__init__`` (after the module's own
    ``__init__``). The counts live in the persistent buffer
    ``class_counts`` (int64), so checkpoints carry them. Without counts the
    buffer is empty (shape ``(0,)``) and ``needs_class_counts`` is True:
    ``ClassCountsHook`` then calls :meth:`set_class_counts` with the
    training set's counts before training. Loading a state dict into an
    empty buffer gives it the checkpoint's shape (a model built for testing
    takes the counts it was trained with); counts given in the config are
    kept when a checkpoint is loaded (they win over the checkpoint's, said
    at INFO when the two differ).
    """

    def _init_class_counts(self, class_counts: Optional[Sequence[int]]):
        counts = [] if class_counts is None else check_class_counts(
            type(self).__name__, class_counts)
        self.register_buffer('class_counts',
                             torch.tensor(counts, dtype=torch.int64))
        #: Whether ClassCountsHook should fill the counts (none given).
        self.needs_class_counts = class_counts is None

    def set_class_counts(self, counts: Sequence[int]) -> None:
        """Replace the counts (the class-counts protocol of ClassCountsHook).

        Args:
            counts (Sequence[int]): Training images per class, all > 0.
        """
        counts = check_class_counts(type(self).__name__, counts)
        self.class_counts = torch.tensor(
            counts, dtype=torch.int64, device=self.class_counts.device)

    def log_prior(self, scores: torch.Tensor) -> torch.Tensor:
        """``log(counts / sum(counts))`` in the dtype of ``scores`` (at
        least float32), on its device.

        Args:
            scores (Tensor): Class scores ``(..., C)``.

        Returns:
            Tensor: The log prior, shape ``(C,)``.

        Raises:
            ValueError: If there are no counts, or not C of them.
        """
        counts, num_classes = self.class_counts, scores.shape[-1]
        if counts.numel() != num_classes:
            got = f'class_counts has {counts.numel()} classes' \
                if counts.numel() else 'no class counts'
            raise ValueError(
                f'{type(self).__name__}: {got} but the scores have '
                f'{num_classes} classes; ClassCountsHook fills them from the '
                'training set (tools/train.py and tools/test.py add it, a '
                "plain Runner needs dict(type='ClassCountsHook') in "
                'custom_hooks), or give class_counts=[...], one per class.')
        dtype = torch.promote_types(scores.dtype, torch.float32)
        counts = counts.to(device=scores.device, dtype=dtype)
        return counts.log() - counts.sum().log()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'class_counts'
        saved = state_dict.get(key, None)
        if saved is None or self.needs_class_counts:
            if self.class_counts.numel() == 0 and saved is not None:
                self.class_counts = self.class_counts.new_empty(saved.shape)
            super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
            return
        # Counts given in the config win over the checkpoint's (e.g. another
        # prior at test time): everything else is loaded.
        state_dict[key] = self.class_counts.clone()
        try:
            super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        finally:
            state_dict[key] = saved
        given, saved = self.class_counts.tolist(), saved.tolist()
        if given != saved:
            print_log(
                f'{type(self).__name__} ({prefix}class_counts): the '
                f'class_counts given in the config {given} are used, not '
                f"the checkpoint's {saved}.",
                logger='current',
                level=logging.INFO)


@MODELS.register_module()
class LogitAdjustedLoss(ClassPriorMixin, nn.Module):
    """Logit-adjusted cross-entropy (Menon et al., ICLR 2021).

    Cross-entropy on ``cls_score + tau * log(prior)``, where
    ``prior = class_counts / sum(class_counts)``. Usable as the ``loss`` of
    any mmpretrain classification head: the call is that of mmpretrain's
    ``CrossEntropyLoss``. Hard labels ``(N,)`` and soft targets ``(N, C)``
    (one-hot or mixed, as Mixup/CutMix give them, like
    ``CrossEntropyLoss(use_soft=True)``) are told apart by their shape.

    With ``class_counts=None`` the counts come from the training set through
    :class:`~mmlt_hybrid.engine.hooks.ClassCountsHook` (see
    :class:`ClassPriorMixin`); they are saved in the checkpoint as
    ``<prefix>.class_counts``.

    Args:
        tau (float): Strength of the adjustment, >= 0; 0 is plain
            cross-entropy. Defaults to 1.0.
        class_counts (Sequence[int], optional): Training images per class.
            Defaults to None (filled by ``ClassCountsHook``).
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.

    Raises:
        ValueError: At construction for a bad ``tau`` or ``class_counts``;
            at the first forward when no counts arrived.
    """

    #: It corrects for the long-tailed prior of the training stream, which a
    #: class-balanced stream no longer has (ModelDataCheckHook refuses it).
    corrects_for_prior = True

    def __init__(self,
                 tau: float = 1.0,
                 class_counts: Optional[Sequence[int]] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau = check_number(type(self).__name__, 'tau', tau, low=0)
        self.reduction = reduction
        self.loss_weight = loss_weight
        self._init_class_counts(class_counts)

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[int] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """The loss of ``cls_score`` ``(N, C)`` against ``label``: class
        indices ``(N,)`` or target scores ``(N, C)``; the other arguments as
        in mmpretrain's ``CrossEntropyLoss``."""
        assert reduction_override in (None, 'none', 'mean', 'sum')
        reduction = reduction_override or self.reduction
        adjusted = cls_score + self.tau * self.log_prior(cls_score)
        criterion = (
            soft_cross_entropy
            if label.dim() == cls_score.dim() else cross_entropy)
        return self.loss_weight * criterion(
            adjusted,
            label,
            weight,
            reduction=reduction,
            avg_factor=avg_factor)


@MODELS.register_module()
class BalancedSoftmaxLoss(LogitAdjustedLoss):
    """Balanced softmax cross-entropy (Ren et al., NeurIPS 2020).

    Cross-entropy on ``cls_score + log(class_counts)``: the same loss as
    :class:`LogitAdjustedLoss` at ``tau=1`` (log counts and log prior differ
    by a constant, which softmax cancels), under the name some users know.

    Args:
        class_counts (Sequence[int], optional): Training images per class.
            Defaults to None (filled by ``ClassCountsHook``).
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(
            tau=1.0,
            class_counts=class_counts,
            reduction=reduction,
            loss_weight=loss_weight)
