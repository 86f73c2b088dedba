"""Data preprocessor of hybrid batches: one copy to the device, augmentation
there, and the batch layout handed on explicitly."""
from typing import Optional, Sequence

import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

from .batch_transforms import apply_batch_transforms, build_batch_transforms
from .step_rng import step_generator


def _stack(batch) -> torch.Tensor:
    """One collated view as an (N, C, H, W) tensor on the host: stacked
    already by ``default_collate``, or a list of (C, H, W) tensors
    (``pseudo_collate``)."""
    if isinstance(batch, torch.Tensor):
        return batch
    try:
        return torch.stack(list(batch))
    except RuntimeError:
        sizes = sorted({tuple(img.shape) for img in batch})
        raise ValueError(
            'HybridDataPreprocessor: the images of a batch must all have '
            f'one size to be stacked, got sizes {sizes}; crop or resize '
            'them to one size in the dataset pipeline.') from None


@MODELS.register_module()
class HybridDataPreprocessor(ClsDataPreprocessor):
    """Preprocessor of hybrid batches, and of ordinary ones.

    **The hybrid batch.** :class:`HybridPairDataset` indexed by
    :class:`ClassBalancedPairSampler` gives, after collation::

        inputs = dict(views=[view_1, ..., view_Vin], balanced=images)
        data_samples = dict(uniform=[N samples], balanced=[N samples])

    where each view and ``balanced`` hold N uint8 images (``Vin`` is 1 when
    the workers only decode, or the number of views they cropped). This
    preprocessor returns the same layout as tensors on the model's device::

        inputs = dict(views=[V tensors (N, C, H, W)],
                      balanced=tensor (N, C, H, W))
        data_samples = dict(uniform=[N samples], balanced=[N samples])

    It stacks every image of the step on the host and copies the uint8 batch
    to the device once. In training it then makes ``num_views`` views of the
    uniform images (a single decoded view is repeated; each copy is
    augmented independently) and runs ``batch_transforms`` on them and
    ``balanced_transforms`` on the balanced images, every row with its own
    parameters, drawn from a generator seeded by (seed, epoch, iteration,
    rank) (:func:`step_generator`), so that a resumed run draws what the
    uninterrupted one drew. Last come the channel flip, the conversion to
    float and the normalisation of :class:`ClsDataPreprocessor`, and the
    labels, copied to the device once.

    **Other batches.** A batch of single images (validation, test, plain
    cross-entropy training) is handled as :class:`ClsDataPreprocessor` does,
    with ``balanced_transforms`` applied first in training; a batch of
    several views of each image (a ``MultiView`` pipeline with an ordinary
    sampler) gives ``inputs`` as a list of per-view tensors, mmpretrain's
    multi-view convention.

    Args:
        num_views (int, optional): Views V of every uniform image handed to
            the model in training. None keeps the number of views the data
            has. Defaults to None.
        batch_transforms (list[dict], optional): Batch transforms of the
            uniform views (e.g. ``BatchRandomCrop``, ``BatchRandomFlip``,
            ``BatchRandomGrayscale``, ``BatchColorJitter``), run in training
            only. Defaults to None (none).
        balanced_transforms (list[dict], optional): Batch transforms of the
            balanced images and of single-image training batches. Defaults
            to None, which uses ``batch_transforms``.
        channels_last (bool): Hand the images over in the channels-last
            memory format (the convolutions then run channels-last, which
            is faster with bf16/fp16 on recent CPUs and GPUs). Defaults to
            False.
        **kwargs: The arguments of :class:`ClsDataPreprocessor` (``mean``,
            ``std``, ``to_rgb``, ``num_classes``, ``batch_augments``, ...).
            ``batch_augments`` (Mixup, CutMix) apply to single-image batches
            only: a hybrid batch refuses them.
    """

    def __init__(self,
                 num_views: Optional[int] = None,
                 batch_transforms: Optional[Sequence[dict]] = None,
                 balanced_transforms: Optional[Sequence[dict]] = None,
                 channels_last: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(channels_last, bool):
            raise TypeError('HybridDataPreprocessor: channels_last='
                            f'{channels_last!r} must be True or False.')
        self.channels_last = channels_last
        if num_views is not None and (isinstance(num_views, bool)
                                      or not isinstance(num_views, int)
                                      or num_views < 1):
            raise ValueError(f'HybridDataPreprocessor: num_views={num_views!r}'
                             ' must be None or a positive integer.')
        self.num_views = num_views
        self.batch_transforms = build_batch_transforms(batch_transforms or [])
        self.balanced_transforms = self.batch_transforms if \
            balanced_transforms is None else build_batch_transforms(
                balanced_transforms)

    def _to_device(self, views: Sequence) -> torch.Tensor:
        """Stack the collated views on the host, one after the other, and
        copy them to the device in one transfer."""
        images = [_stack(view) for view in views]
        if len({img.shape[1:] for img in images}) > 1:
            raise ValueError(
                'HybridDataPreprocessor: the images of a batch must all have '
                'one size to be stacked, got sizes '
                f'{sorted({tuple(img.shape[1:]) for img in images})}; crop '
                'or resize them to one size in the dataset pipeline.')
        images = images[0] if len(images) == 1 else torch.cat(images)
        return images.to(self.device, non_blocking=True)

    @staticmethod
    def _augment(transforms, images: torch.Tensor,
                 stream: str) -> torch.Tensor:
        """Run ``transforms`` with the generator of this step and stream."""
        if not transforms:
            return images
        generator = step_generator(images.device, stream)
        return apply_batch_transforms(transforms, images, generator)

    def _finish(self, images: torch.Tensor, data_samples,
                training: bool) -> dict:
        """Channel flip, float, normalisation and labels of one tensor, as
        :class:`ClsDataPreprocessor` does them."""
        out = super().forward(
            dict(inputs=images, data_samples=data_samples), training)
        if self.channels_last and isinstance(out['inputs'], torch.Tensor):
            out['inputs'] = out['inputs'].contiguous(
                memory_format=torch.channels_last)
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess one batch (see the class docstring for the layouts).

        Args:
            data (dict): Data from the dataloader, with ``inputs`` and
                optionally ``data_samples``.
            training (bool): Whether this is a training step.

        Returns:
            dict: ``inputs`` and ``data_samples`` in the layout of the batch.
        """
        inputs = data['inputs']
        samples = data.get('data_samples', None)
        multi_view = isinstance(inputs, dict) or (
            isinstance(inputs, (list, tuple)) and inputs
            and isinstance(inputs[0], (list, tuple)))
        if multi_view and training and self.batch_augments is not None:
            raise ValueError(
                'HybridDataPreprocessor: batch_augments (e.g. Mixup, CutMix) '
                'are only supported for batches of single images, not for '
                'hybrid or multi-view batches; remove `batch_augments` from '
                'data_preprocessor')
        if isinstance(inputs, dict):
            return self._hybrid(data, training)
        if multi_view:
            # Several views of every image: mmpretrain's multi-view layout.
            n = len(inputs[0])
            images = self._to_device(inputs)
            if training:
                images = self._augment(self.batch_transforms, images, 'views')
            out = self._finish(images, samples, False)
            out['inputs'] = list(out['inputs'].split(n))
            return out
        if training and self.balanced_transforms:
            images = self._to_device([inputs])
            inputs = self._augment(self.balanced_transforms, images,
                                   'balanced')
        return self._finish(inputs, samples, training)

    def _hybrid(self, data: dict, training: bool) -> dict:
        """The hybrid batch: uniform views and balanced images."""
        inputs, samples = data['inputs'], data.get('data_samples') or {}
        if set(inputs) != {'views', 'balanced'}:
            raise ValueError(
                'HybridDataPreprocessor: a hybrid batch has inputs=dict('
                f'views=[...], balanced=...), got keys {sorted(inputs)}; '
                'HybridPairDataset makes this batch.')
        views, balanced = list(inputs['views']), inputs['balanced']
        n = len(balanced)
        if any(len(view) != n for view in views):
            raise ValueError(
                'HybridDataPreprocessor: every view must hold as many images '
                f'as the balanced batch ({n}), got {[len(v) for v in views]}')
        num_views = self.num_views or len(views)
        if len(views) not in (1, num_views):
            raise ValueError(
                f'HybridDataPreprocessor: num_views={num_views} but the data '
                f'has {len(views)} views of each uniform image; give one '
                '(decoded only, viewed here) or num_views of them.')
        images = self._to_device(views + [balanced])
        uniform, balanced = images.split([len(views) * n, n])
        if training:
            if len(views) != num_views:
                uniform = uniform.repeat(num_views, 1, 1, 1)
            if self.balanced_transforms is self.batch_transforms:
                # One pass over all rows; every row draws its own parameters.
                images = self._augment(self.batch_transforms,
                                       torch.cat([uniform, balanced]), 'views')
            else:
                images = torch.cat([
                    self._augment(self.batch_transforms, uniform, 'views'),
                    self._augment(self.balanced_transforms, balanced,
                                  'balanced')
                ])
        else:
            num_views = len(views)
        uniform_samples = samples.get('uniform')
        balanced_samples = samples.get('balanced')
        flat = None if uniform_samples is None else (
            list(uniform_samples) + list(balanced_samples or []))
        out = self._finish(images, flat, False)
        tensors = out['inputs'].split(n)
        return dict(
            inputs=dict(views=list(tensors[:num_views]),
                        balanced=tensors[num_views]),
            data_samples=dict(
                uniform=uniform_samples, balanced=balanced_samples))


__all__ = ['HybridDataPreprocessor']
