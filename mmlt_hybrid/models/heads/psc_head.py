"""Projection head with learnable class prototypes and the PSC loss."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ..losses.psc_loss import check_num_negatives
from .supcon_head import FeatsType, ProjectionHead, SamplesType


@MODELS.register_module()
class PSCHead(ProjectionHead):
    """Feature head: projection MLP + L2 normalisation + PSC loss.

    The projection is ``Linear(in, hid) -> ReLU -> Linear(hid, out)``
    (``with_bn=True`` adds BatchNorm1d after the hidden layer), followed by
    L2 normalisation. The head owns one learnable prototype per class,
    ``prototypes`` of shape (num_classes, out_channels), initialised from a
    standard normal distribution and L2-normalised whenever it is used; it is
    an ordinary parameter, so the optimizer trains it and checkpoints save and
    restore it. :meth:`loss` takes feature rows and one label (or data
    sample) per row. Usable on its own, e.g. as an extra loss head in another
    model.

    Args:
        num_classes: Number of classes C (>= 2).
        in_channels: Width of the backbone feature. Defaults to 64.
        hid_channels: Hidden width; None means ``in_channels``.
        out_channels: Embedding (and prototype) width. Defaults to 128.
        loss: Config of the loss. Defaults to
            ``dict(type='PSCLoss', temperature=0.1)``.
        with_bn: BatchNorm1d after the hidden layer. Defaults to False.
        init_cfg: Initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 64,
                 hid_channels: Optional[int] = None,
                 out_channels: int = 128,
                 loss: dict = dict(type='PSCLoss', temperature=0.1),
                 with_bn: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            in_channels=in_channels,
            hid_channels=hid_channels,
            out_channels=out_channels,
            with_bn=with_bn,
            init_cfg=init_cfg)
        if (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                or num_classes < 2):
            raise ValueError(f'PSCHead: num_classes={num_classes!r} must be '
                             'an integer >= 2.')
        self.num_classes = num_classes
        self.loss_module = loss if isinstance(loss, nn.Module) else \
            MODELS.build(loss)
        check_num_negatives(
            getattr(self.loss_module, 'num_negatives', None), num_classes,
            'PSCHead (loss.num_negatives)')
        self.prototypes = nn.Parameter(
            torch.randn(num_classes, self.out_channels))

    def normalized_prototypes(self) -> torch.Tensor:
        """The prototypes scaled to unit length, shape (C, out_channels)."""
        prototypes = self.prototypes
        if prototypes.dtype in (torch.float16, torch.bfloat16):
            prototypes = prototypes.float()
        return F.normalize(prototypes, dim=1)

    def loss(self, feats: FeatsType, data_samples: SamplesType) -> dict:
        """Compute the PSC loss of the feature rows.

        Args:
            feats: Features (M, in_channels), or a tuple whose last item is
                that.
            data_samples: M data samples, or a tensor of the M labels, in
                ``[0, num_classes)``.

        Returns:
            dict[str, Tensor]: ``dict(loss=...)``.
        """
        z = self(feats)
        return dict(
            loss=self.loss_module(z, self.row_labels(data_samples),
                                  self.normalized_prototypes()))
