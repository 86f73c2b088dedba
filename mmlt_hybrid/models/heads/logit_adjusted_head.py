"""Linear classification head with post-hoc logit adjustment."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...validation import check_number
from ..losses.logit_adjusted_loss import ClassPriorMixin


@MODELS.register_module()
class LogitAdjustedLinearClsHead(ClassPriorMixin, LinearClsHead):
    """mmpretrain's ``LinearClsHead`` whose predictions are logit-adjusted.

    :meth:`predict` (validation, testing, mmpretrain's inferencer) scores
    ``logits - posthoc_tau * log(prior)``, ``prior = class_counts /
    sum(class_counts)`` (post-hoc logit adjustment, Menon et al., ICLR
    2021); training (:meth:`loss`) is that of ``LinearClsHead`` with its
    ``loss``. Use it on a head trained with plain cross-entropy; a head
    trained with ``LogitAdjustedLoss`` is adjusted already (keep
    ``posthoc_tau=0``, or change it at test time to compare).

    The head holds its own counts (``head.class_counts`` in the checkpoint,
    see :class:`~mmlt_hybrid.models.losses.logit_adjusted_loss.
    ClassPriorMixin`): with ``class_counts=None`` ``ClassCountsHook`` fills
    them from the training set before training, and a model built for
    testing takes them from the checkpoint, so ``tools/test.py`` needs no
    training set. A checkpoint of a plain ``LinearClsHead`` (trained with
    cross-entropy) has the same weights and no counts; ``tools/test.py``
    loads it into this head (the strict check lets ``class_counts`` be
    missing) and the counts are given at test time, one per class in label
    order: ``--cfg-options model.head.type=LogitAdjustedLinearClsHead
    'model.head.class_counts=[n0,n1,...]'``. ``posthoc_tau`` may be changed
    in the test config (``--cfg-options model.head.posthoc_tau=...``).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Number of input channels.
        posthoc_tau (float): Strength of the adjustment, >= 0; 0 predicts
            as ``LinearClsHead``. Defaults to 1.0.
        class_counts (Sequence[int], optional): Training images per class.
            Defaults to None (filled by ``ClassCountsHook`` or a checkpoint).
        **kwargs: Other arguments of ``LinearClsHead`` (``loss``, ...).

    Raises:
        ValueError: In :meth:`predict` with ``posthoc_tau > 0`` when the
            head has no counts.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 posthoc_tau: float = 1.0,
                 class_counts: Optional[Sequence[int]] = None,
                 **kwargs) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs)
        self.posthoc_tau = check_number(
            type(self).__name__, 'posthoc_tau', posthoc_tau, low=0)
        self._init_class_counts(class_counts)

    def predict(
        self,
        feats: Tuple[torch.Tensor],
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Predictions from the adjusted scores; as ``LinearClsHead``'s."""
        cls_score = self(feats)
        if self.posthoc_tau and self.class_counts.numel() == 0:
            raise ValueError(
                f'{type(self).__name__}: posthoc_tau={self.posthoc_tau} '
                'needs the class counts of the training set, and the head '
                'has none: class_counts is None in the config and the '
                'checkpoint holds no class_counts for the head (e.g. a '
                'LinearClsHead trained with plain cross-entropy). Give them, '
                'one integer > 0 per class in label order, e.g. '
                "--cfg-options 'model.head.class_counts=[n0,n1,...]', or set "
                'posthoc_tau=0 to predict without adjustment.')
        if self.posthoc_tau:
            cls_score = cls_score - self.posthoc_tau * self.log_prior(
                cls_score)
        return self._get_predictions(cls_score, data_samples)
