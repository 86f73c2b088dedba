"""Projection head with learnable class prototypes and the PSC loss."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...validation import check_int
from ..losses.utils import loss_dtype
from .projection_head import ProjectionHead, SamplesType


@MODELS.register_module()
class PSCHead(ProjectionHead):
    """Feature head: projection MLP, L2 normalisation and the PSC loss
    against one learnable prototype per class (``prototypes``, (C,
    out_channels), standard-normal initialised, L2-normalised when used,
    trained and checkpointed as an ordinary parameter).

    Args:
        num_classes: Number of classes C (>= 2).
        loss: Config of the loss. Defaults to
            ``dict(type='PSCLoss', temperature=0.1)``.
        **kwargs: The arguments of :class:`ProjectionHead`.

    Raises:
        ValueError: If ``num_classes`` is not an integer >= 2, or the loss
            samples ``num_negatives`` > C - 1 negatives.
    """

    def __init__(self,
                 num_classes: int,
                 loss: dict = dict(type='PSCLoss', temperature=0.1),
                 **kwargs):
        super().__init__(loss=loss, **kwargs)
        self.num_classes = check_int(
            'PSCHead', 'num_classes', num_classes, min_value=2)
        # Checked once here, where C is known; the loss only sees shapes.
        num_negatives = getattr(self.loss_module, 'num_negatives', None)
        if num_negatives is not None and num_negatives >= num_classes:
            raise ValueError(
                f'PSCHead: loss.num_negatives={num_negatives} is not allowed '
                f'with num_classes={num_classes}; it must be <= num_classes - '
                f'1 = {num_classes - 1} (or None for all negatives).')
        self.prototypes = nn.Parameter(
            torch.randn(num_classes, self.out_channels))

    def normalized_prototypes(self) -> torch.Tensor:
        """The prototypes scaled to unit length, shape (C, out_channels)."""
        return F.normalize(
            self.prototypes.to(loss_dtype(self.prototypes)), dim=1)

    def _get_loss(self, z: torch.Tensor, data_samples: SamplesType) -> dict:
        """The PSC loss of the embeddings ``z`` (M, out_channels) against
        the prototypes; labels in ``[0, num_classes)``."""
        return dict(
            loss=self.loss_module(z, self.row_labels(data_samples),
                                  self.normalized_prototypes()))
