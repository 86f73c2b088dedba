"""Projection head with the balanced contrastive loss, whose class
prototypes come from the classifier's weights (BCL, Zhu et al. 2022)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...validation import check_int
from ..losses.utils import loss_dtype
from .projection_head import FeatsType, ProjectionHead, SamplesType


@MODELS.register_module()
class BCLHead(ProjectionHead):
    """Feature head of balanced contrastive learning: projection MLP
    (``in -> hid -> BN -> ReLU -> out``, BCL's 64 -> 512 -> 128), L2
    normalisation and the balanced contrastive loss against one prototype
    per class.

    The prototypes are not parameters of their own: they are the
    classifier's weights (C, in_channels) passed through a small MLP of the
    head, ``Linear(in, proto_hid) -> BatchNorm1d -> ReLU -> Linear(proto_hid,
    out)``, then L2-normalised. The head therefore declares
    ``needs_classifier_weight = True`` and its :meth:`loss` takes that
    weight. The weight is used as given, **not detached**: the caller
    decides whether the contrastive loss trains the classifier (BCL lets the
    gradient flow; pass ``weight.detach()`` to stop it).

    Args:
        num_classes: Number of classes C (>= 2, the prototype MLP
            batch-normalises over the C weight rows).
        in_channels: Width of the input feature and of the classifier's
            weight rows. Defaults to 64.
        hid_channels: Width of the projection's hidden layer. Defaults to
            512.
        out_channels: Width of the embedding and of the prototypes.
            Defaults to 128.
        with_bn: BatchNorm1d after the projection's hidden layer. Defaults
            to True.
        loss: Config (or module) of the loss, called as
            ``loss(z, labels, prototypes)``. Defaults to
            ``dict(type='BalancedContrastiveLoss', temperature=0.1)``.
        proto_hid_channels: Width of the prototype MLP's hidden layer; None
            means ``hid_channels``. Defaults to None.
        init_cfg: Initialisation config. Defaults to None.

    Raises:
        ValueError: If ``num_classes`` is not an integer >= 2 or a width is
            not a positive integer.
    """

    #: :meth:`loss` takes the classifier's weight (C, in_channels).
    needs_classifier_weight = True

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 64,
                 hid_channels: int = 512,
                 out_channels: int = 128,
                 with_bn: bool = True,
                 loss: dict = dict(
                     type='BalancedContrastiveLoss', temperature=0.1),
                 proto_hid_channels: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            in_channels=in_channels,
            hid_channels=hid_channels,
            out_channels=out_channels,
            loss=loss,
            with_bn=with_bn,
            init_cfg=init_cfg)
        self.num_classes = check_int(
            'BCLHead', 'num_classes', num_classes, min_value=2)
        self.proto_hid_channels = check_int(
            'BCLHead', 'proto_hid_channels', self.hid_channels
            if proto_hid_channels is None else proto_hid_channels)
        self.prototype_projector = nn.Sequential(
            nn.Linear(self.in_channels, self.proto_hid_channels),
            nn.BatchNorm1d(self.proto_hid_channels), nn.ReLU(inplace=True),
            nn.Linear(self.proto_hid_channels, self.out_channels))

    def prototypes(self, classifier_weight: torch.Tensor) -> torch.Tensor:
        """The class prototypes made from the classifier's weight.

        Args:
            classifier_weight: The classifier's weight, shape
                (num_classes, in_channels); not detached here.

        Returns:
            Tensor: Unit-length prototypes, shape (num_classes,
            out_channels); float32 or wider.

        Raises:
            ValueError: If the weight is not (num_classes, in_channels).
        """
        expected = (self.num_classes, self.in_channels)
        got = tuple(classifier_weight.shape)
        if got != expected:
            raise ValueError(
                f'BCLHead: classifier_weight must have the shape (num_classes,'
                f' in_channels) = {expected}, that of the linear classifier '
                f'reading the features this head reads; got {got}.')
        prototypes = self.prototype_projector(classifier_weight)
        return F.normalize(prototypes.to(loss_dtype(prototypes)), dim=1)

    def loss(self, feats: FeatsType, data_samples: SamplesType,
             classifier_weight: torch.Tensor) -> dict:
        """The balanced contrastive loss of the feature rows.

        Args:
            feats: Features (M, in_channels), or a tuple whose last item is
                that.
            data_samples: M data samples, or a tensor of the M labels (in
                ``[0, num_classes)``): one label per row.
            classifier_weight: The classifier's weight, shape (num_classes,
                in_channels).

        Returns:
            dict[str, Tensor]: ``dict(loss=...)``.

        Raises:
            ValueError: If the features or the weight have the wrong shape.
        """
        return dict(
            loss=self.loss_module(
                self(feats), self.row_labels(data_samples),
                self.prototypes(classifier_weight)))
