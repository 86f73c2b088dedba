"""Data preprocessor for (multi-view uniform, balanced) hybrid batches."""
from typing import List, Sequence

import torch
from mmengine.structures import BaseDataElement

from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS


def _is_view_list(inputs) -> bool:
    """Whether ``inputs`` is a batch of views rather than a batch of images.

    A batch of views is a list (one item per view) of per-image sequences
    (``pseudo_collate``) or of ``(N, C, H, W)`` tensors (``default_collate``).
    An ordinary batch is a tensor or a list of ``(C, H, W)`` tensors.
    """
    if not isinstance(inputs, (list, tuple)) or len(inputs) == 0:
        return False
    first = inputs[0]
    if isinstance(first, (list, tuple)):
        return True
    return isinstance(first, torch.Tensor) and first.dim() == 4


@MODELS.register_module()
class HybridDataPreprocessor(ClsDataPreprocessor):
    """Preprocessor of hybrid batches, and of ordinary ones.

    A training batch of :class:`HybridPairDataset` after ``pseudo_collate``
    has ``inputs`` as a list of ``V + 1`` views, each a sequence of ``N``
    image tensors (``[view_1, ..., view_V, balanced]``), and ``data_samples``
    as ``[uniform (N), balanced (N)]``. This preprocessor returns

    - ``inputs``: one tensor of shape ``(V * N + N, C, H, W)`` ordered
      ``[view_1 (N), ..., view_V (N), balanced (N)]``;
    - ``data_samples``: one flat list of ``2 N`` samples,
      ``[uniform (N), balanced (N)]``.

    Every image is converted, normalised and padded exactly as mmpretrain's
    :class:`ClsDataPreprocessor` does (channel flip when ``to_rgb``, float
    conversion, ``(x - mean) / std``, padding to ``pad_size_divisor`` with
    ``pad_value``), and labels are set (and one-hot scores made with
    ``to_onehot``) the same way. Any other batch (single-view validation and
    test batches, plain cross-entropy training) is handled by
    :class:`ClsDataPreprocessor` unchanged.

    Batch augmentations (Mixup, CutMix) are not defined for the two-branch
    batch: with ``batch_augments`` set, a multi-view training batch raises.

    Args:
        See :class:`mmpretrain.models.utils.ClsDataPreprocessor`.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        """Stack, normalise and flatten a (multi-view) batch.

        Args:
            data (dict): Data from the dataloader, with ``inputs`` and
                optionally ``data_samples``.
            training (bool): Whether this is a training step.

        Returns:
            dict: ``inputs`` (a tensor) and ``data_samples`` (a flat list or
            None).
        """
        inputs = data['inputs']
        if not _is_view_list(inputs):
            return super().forward(data, training)

        if training and self.batch_augments is not None:
            raise ValueError(
                'HybridDataPreprocessor: batch_augments (e.g. Mixup, CutMix) '
                'are not supported for multi-view hybrid batches; remove '
                '`batch_augments` from data_preprocessor')

        images: List[torch.Tensor] = []
        batch_size = None
        for v, view in enumerate(inputs):
            view_images = list(view) if not isinstance(
                view, torch.Tensor) else list(view.unbind(0))
            if batch_size is None:
                batch_size = len(view_images)
            elif len(view_images) != batch_size:
                raise ValueError(
                    'every view of a multi-view batch must hold the same '
                    f'number of images; view 0 has {batch_size}, view {v} '
                    f'has {len(view_images)}')
            images.extend(view_images)

        data_samples = data.get('data_samples', None)
        if data_samples is not None:
            data_samples = self._flatten_samples(data_samples)

        # The per-image branch of ClsDataPreprocessor (pseudo_collate) does
        # the conversion, normalisation, padding and stacking; labels are
        # handled there too. No batch augmentation: training=False.
        return super().forward(
            dict(inputs=images, data_samples=data_samples), training=False)

    @staticmethod
    def _flatten_samples(data_samples: Sequence) -> list:
        """``[[uniform...], [balanced...]]`` -> ``[uniform..., balanced...]``;
        a flat list is returned as a list."""
        flat = []
        for item in data_samples:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        for sample in flat:
            if not isinstance(sample, BaseDataElement):
                raise TypeError(
                    'data_samples must be data samples or lists of them, '
                    f'got {type(sample).__name__}: {sample!r}')
        return flat


__all__ = ['HybridDataPreprocessor']
