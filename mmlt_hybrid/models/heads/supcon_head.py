"""Projection head trained with the supervised contrastive loss."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

FeatsType = Union[torch.Tensor, Sequence[torch.Tensor]]
SamplesType = Union[torch.Tensor, Sequence[DataSample]]


def _check_channels(name: str, value, owner: str) -> int:
    """Return ``value`` if it is a positive int, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f'{owner}: {name}={value!r} must be a positive integer.')
    return value


class ProjectionHead(BaseModule):
    """A projection MLP with one hidden layer and L2-normalised output.

    ``Linear(in, hid) -> [BatchNorm1d(hid)] -> ReLU -> Linear(hid, out)``,
    then L2 normalisation. Without ``with_bn`` (the default) this is the
    projection of the SupCon reference (Linear-ReLU-Linear); both linear
    layers have a bias and PyTorch's default initialisation.

    Args:
        in_channels: Width of the input feature. Defaults to 64.
        hid_channels: Width of the hidden layer; None means ``in_channels``.
        out_channels: Width of the embedding. Defaults to 128.
        with_bn: Put a BatchNorm1d after the hidden linear layer. Defaults to
            False.
        init_cfg: Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 64,
                 hid_channels: Optional[int] = None,
                 out_channels: int = 128,
                 with_bn: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        self.in_channels = _check_channels('in_channels', in_channels, owner)
        self.hid_channels = in_channels if hid_channels is None else \
            _check_channels('hid_channels', hid_channels, owner)
        self.out_channels = _check_channels('out_channels', out_channels,
                                            owner)
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

    def forward(self, feats: FeatsType) -> torch.Tensor:
        """Project and L2-normalise.

        Args:
            feats: A tensor (M, in_channels) or a tuple of them (the output
                of a neck); then the last one is used.

        Returns:
            Tensor: Unit-length embeddings, shape (M, out_channels); float32
            when the projection ran in half precision (autocast).
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
        if z.dtype in (torch.float16, torch.bfloat16):
            z = z.float()  # normalise (and contrast) in float32
        return F.normalize(z, dim=1)

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


@MODELS.register_module()
class SupConHead(ProjectionHead):
    """Feature head: projection MLP + L2 normalisation + SupCon loss.

    The projection is ``Linear(in, hid) -> ReLU -> Linear(hid, out)`` (the
    SupCon reference; ``with_bn=True`` adds BatchNorm1d after the hidden
    layer), followed by L2 normalisation. :meth:`loss` takes feature rows
    and one label (or data sample) per row: the views of an image are simply
    more rows with its label, laid out by the caller. Usable on its own,
    e.g. as an extra loss head in another model.

    Args:
        in_channels: Width of the backbone feature. Defaults to 64.
        hid_channels: Hidden width; None means ``in_channels``.
        out_channels: Embedding width. Defaults to 128.
        loss: Config of the loss. Defaults to
            ``dict(type='SupConLoss', temperature=0.1)``.
        with_bn: BatchNorm1d after the hidden layer. Defaults to False.
        init_cfg: Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 64,
                 hid_channels: Optional[int] = None,
                 out_channels: int = 128,
                 loss: dict = dict(type='SupConLoss', temperature=0.1),
                 with_bn: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            in_channels=in_channels,
            hid_channels=hid_channels,
            out_channels=out_channels,
            with_bn=with_bn,
            init_cfg=init_cfg)
        self.loss_module = loss if isinstance(loss, nn.Module) else \
            MODELS.build(loss)

    def loss(self, feats: FeatsType, data_samples: SamplesType) -> dict:
        """Compute the SupCon loss of the feature rows.

        Args:
            feats: Features (M, in_channels), or a tuple whose last item is
                that.
            data_samples: M data samples, or a tensor of the M labels.

        Returns:
            dict[str, Tensor]: ``dict(loss=...)``.
        """
        z = self(feats)
        return dict(loss=self.loss_module(z, self.row_labels(data_samples)))
