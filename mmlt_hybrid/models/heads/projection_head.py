"""The projection MLP that the contrastive feature heads share."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...validation import check_int
from ..losses.utils import loss_dtype

FeatsType = Union[torch.Tensor, Sequence[torch.Tensor]]
SamplesType = Union[torch.Tensor, Sequence[DataSample]]


class ProjectionHead(BaseModule):
    """A projection MLP with one hidden layer and L2-normalised output, and
    the loss of those embeddings.

    ``Linear(in, hid) -> [BatchNorm1d(hid)] -> ReLU -> Linear(hid, out)``,
    then L2 normalisation. Without ``with_bn`` (the default) this is the
    projection of the SupCon reference (Linear-ReLU-Linear); both linear
    layers have a bias and PyTorch's default initialisation.

    As in mmpretrain's ``ClsHead``, :meth:`loss` is :meth:`forward` followed
    by :meth:`_get_loss`, which subclasses override to hand the loss more
    inputs (e.g. ``PSCHead`` its prototypes).

    Args:
        in_channels: Width of the input feature. Defaults to 64.
        hid_channels: Width of the hidden layer; None means ``in_channels``.
        out_channels: Width of the embedding. Defaults to 128.
        loss: Config (or module) of the loss, called as
            ``loss(z, labels)``; needed by :meth:`loss` only. Defaults to
            None.
        with_bn: Put a BatchNorm1d after the hidden linear layer. Defaults to
            False.
        init_cfg: Initialisation config. Defaults to None.

    Raises:
        ValueError: If a width is not a positive integer.
    """

    def __init__(self,
                 in_channels: int = 64,
                 hid_channels: Optional[int] = None,
                 out_channels: int = 128,
                 loss: Optional[Union[dict, nn.Module]] = None,
                 with_bn: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        self.in_channels = check_int(owner, 'in_channels', in_channels)
        self.hid_channels = check_int(
            owner, 'hid_channels',
            in_channels if hid_channels is None else hid_channels)
        self.out_channels = check_int(owner, 'out_channels', out_channels)
        layers: List[nn.Module] = [
            nn.Linear(self.in_channels, self.hid_channels)
        ]
        if with_bn:
            layers.append(nn.BatchNorm1d(self.hid_channels))
        layers += [
            nn.ReLU(inplace=True),
            nn.Linear(self.hid_channels, self.out_channels)
        ]
        self.projector = nn.Sequential(*layers)
        self.loss_module = loss if loss is None or isinstance(
            loss, nn.Module) else MODELS.build(loss)

    @property
    def min_rows_per_step(self) -> int:
        """The fewest feature rows a step must give the loss for it to be
        non-zero, as the loss declares it (``min_rows``; 1: any number)."""
        return getattr(self.loss_module, 'min_rows', 1)

    @property
    def rows_across_ranks(self) -> bool:
        """Whether the rows of all processes count together (the loss
        gathers them, ``gather_distributed``)."""
        return bool(getattr(self.loss_module, 'gather_distributed', False))

    def forward(self, feats: FeatsType) -> torch.Tensor:
        """Project and L2-normalise.

        Args:
            feats: A tensor (M, in_channels) or a tuple of them (the output
                of a neck); then the last one is used.

        Returns:
            Tensor: Unit-length embeddings, shape (M, out_channels); float32
            when the projection ran in half precision (autocast).

        Raises:
            ValueError: If the features are not (M, in_channels).
        """
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]
        if feats.dim() != 2 or feats.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__}: expects features of shape '
                f'(M, {self.in_channels}) (in_channels), got '
                f'{tuple(feats.shape)}; put a pooling neck such as '
                "GlobalAveragePooling before the head or fix in_channels.")
        z = self.projector(feats)
        return F.normalize(z.to(loss_dtype(z)), dim=1)

    def loss(self, feats: FeatsType, data_samples: SamplesType) -> dict:
        """The loss of the feature rows: :meth:`forward`, then
        :meth:`_get_loss`.

        Args:
            feats: Features (M, in_channels), or a tuple whose last item is
                that.
            data_samples: M data samples, or a tensor of the M labels: one
                label per row (the views of an image are rows with its
                label, laid out by the caller).

        Returns:
            dict[str, Tensor]: ``dict(loss=...)``.
        """
        return self._get_loss(self(feats), data_samples)

    def _get_loss(self, z: torch.Tensor, data_samples: SamplesType) -> dict:
        """The loss of the embeddings ``z`` (M, out_channels)."""
        return dict(loss=self.loss_module(z, self.row_labels(data_samples)))

    @staticmethod
    def row_labels(data_samples: SamplesType) -> torch.Tensor:
        """The label of every feature row.

        Args:
            data_samples: One data sample per row (its ``gt_label`` is
                used), or a tensor of the row labels.

        Returns:
            Tensor: The labels, shape (M,).
        """
        if isinstance(data_samples, torch.Tensor):
            return data_samples.reshape(-1)
        return torch.cat(
            [sample.gt_label.reshape(-1) for sample in data_samples])
