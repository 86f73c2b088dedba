"""Data preprocessor of hybrid batches: one copy to the device, augmentation
there, and the batch layout handed on explicitly."""
from contextlib import nullcontext
from typing import Optional, Sequence

import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

from ...validation import check, check_bool, check_int
from .batch_transforms import apply_batch_transforms, build_batch_transforms
from ...randomness import step_generator, step_seeded_global_rng


def _name(sample, k: int) -> str:
    """How an error names the ``k``-th image of a batch: its file, its
    index in the dataset, or its position in the batch."""
    meta = getattr(sample, 'metainfo', None) or {}
    if 'img_path' in meta:
        return str(meta['img_path'])
    if 'sample_idx' in meta:
        return f'sample_idx {meta["sample_idx"]}'
    return f'batch position {k}'


def _check_one_size(images: Sequence[torch.Tensor],
                   samples: Optional[Sequence] = None,
                   can_pad: bool = True) -> None:
    """Refuse a batch of images of several sizes, naming the sizes and the
    images (files where the data samples carry ``img_path``) whose size
    differs from the most common one.

    Only shapes are compared (Python ints on the host): no tensor value is
    read.

    Args:
        images (Sequence[Tensor]): The (C, H, W) images of a batch.
        samples (Sequence[DataSample], optional): Their data samples.
        can_pad (bool): Whether ``pad_to_same_size=True`` would accept the
            batch (the hint of the message).

    Raises:
        ValueError: If the images do not all have one shape.
    """
    shapes = [tuple(img.shape) for img in images]
    if len(set(shapes)) <= 1:
        return
    common = max(set(shapes), key=shapes.count)
    samples = list(samples or [])
    samples += [None] * (len(shapes) - len(samples))
    odd = [f'{shape} ({_name(samples[k], k)})'
           for k, shape in enumerate(shapes) if shape != common]
    more = f' and {len(odd) - 5} more' if len(odd) > 5 else ''
    hint = (' or set data_preprocessor.pad_to_same_size=True to pad them '
            'to the largest with pad_value' if can_pad else '')
    raise ValueError(
        'HybridDataPreprocessor: the images of a batch must all have one '
        f'size, got sizes {sorted(set(shapes))}: {shapes.count(common)} of '
        f'{common}, and {", ".join(odd[:5])}{more}; resize or crop them to '
        f'one size in the dataset pipeline{hint}.')


def _stack(batch, samples=None) -> torch.Tensor:
    """One collated view as an (N, C, H, W) tensor on the host: stacked
    already by ``default_collate``, or a list of (C, H, W) tensors
    (``pseudo_collate``), which must have one size."""
    if isinstance(batch, torch.Tensor):
        return batch
    _check_one_size(batch, samples, can_pad=False)
    return torch.stack(list(batch))


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
    sampler, collated by ``pseudo_collate`` or ``default_collate``) gives
    ``inputs`` as a list of per-view tensors, mmpretrain's multi-view
    convention, with ``batch_transforms`` applied in training.

    **Single images viewed here.** With ``view_single_images=True`` a
    training batch of single images (e.g. a held-in-memory
    ``HybridPairDataset`` with ``DefaultSampler``) is viewed like the
    uniform images of a hybrid batch: repeated ``num_views`` times, every
    copy of every image augmented by ``batch_transforms`` with its own draws,
    and handed on in the multi-view layout::

        inputs = [V tensors (N, C, H, W)], data_samples = [N samples]

    :class:`HybridClassifier` with ``cls_input='uniform'`` sets it (it trains
    both heads on these views). Validation and test batches keep one view.

    **Image sizes.** The images of a batch must all have one size (shape),
    or the batch is refused with an error naming the sizes and the odd
    images (their files where the data samples carry ``img_path``): padding
    a smaller image silently changes what the model sees of it. Only shapes
    are compared, on the host. A batch of single images that reaches the
    normalisation as a list (validation and test batches, made by
    ``pseudo_collate``) may instead be padded as
    :class:`ClsDataPreprocessor` pads it, with ``pad_to_same_size=True``;
    images that are augmented or viewed here must have one size.

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
        view_single_images (bool): In training, view a batch of single
            images ``num_views`` times (see above) instead of handing it on
            as one view. Needs ``num_views``. Defaults to False.
        pad_to_same_size (bool): Pad the images of a batch of single
            images that reaches the normalisation as a list (``pseudo_collate``
            without batch transforms: validation and test batches) at the
            bottom and right, after normalisation, with ``pad_value`` to the
            largest size of the batch, as :class:`ClsDataPreprocessor` does,
            instead of refusing a batch of several sizes. Defaults to False.
        **kwargs: The arguments of :class:`ClsDataPreprocessor` (``mean``,
            ``std``, ``to_rgb``, ``num_classes``, ``batch_augments``, ...).
            ``batch_augments`` (mmpretrain's Mixup, CutMix, with
            ``num_classes``) mix the images the classifier alone reads, in
            training: single-image batches and the balanced part of a hybrid
            batch, whose data samples get the mixed ``gt_score``; the views
            of a hybrid or multi-view batch, which the feature head reads
            too, are never mixed, and ``view_single_images=True`` refuses
            them. Their draws (numpy's and torch's CPU global generators)
            are seeded per step (:func:`step_seeded_global_rng`), so a
            resumed run mixes as the uninterrupted one.

    Raises:
        TypeError: If a switch is not True or False.
        ValueError: If ``num_views`` is not None or a positive integer, or
            ``view_single_images=True`` comes without ``num_views`` or with
            ``batch_augments``, or ``batch_augments`` come without
            ``num_classes``.
    """

    def __init__(self,
                 num_views: Optional[int] = None,
                 batch_transforms: Optional[Sequence[dict]] = None,
                 balanced_transforms: Optional[Sequence[dict]] = None,
                 channels_last: bool = False,
                 view_single_images: bool = False,
                 pad_to_same_size: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        owner = 'HybridDataPreprocessor'
        self.channels_last = check_bool(owner, 'channels_last', channels_last)
        self.pad_to_same_size = check_bool(owner, 'pad_to_same_size',
                                           pad_to_same_size)
        self.view_single_images = check_bool(owner, 'view_single_images',
                                             view_single_images)
        self.num_views = check_int(owner, 'num_views', num_views,
                                   optional=True)
        if view_single_images and (num_views is None or self.batch_augments):
            raise ValueError(
                f'{owner}: view_single_images=True needs num_views (got '
                f'{num_views!r}) and no batch_augments; set num_views=2 (the '
                'views per image) and remove batch_augments.')
        if self.batch_augments and not self.num_classes:
            raise ValueError(
                f'{owner}: batch_augments (Mixup, CutMix) mix one-hot scores '
                f'and need num_classes, got num_classes={self.num_classes!r};'
                ' set data_preprocessor.num_classes.')
        self.batch_transforms = build_batch_transforms(batch_transforms or [])
        self.balanced_transforms = self.batch_transforms if \
            balanced_transforms is None else build_batch_transforms(
                balanced_transforms)

    def _to_device(self, views: Sequence,
                   samples: Sequence = ()) -> torch.Tensor:
        """Stack the collated views on the host, one after the other, and
        copy them to the device in one transfer (``samples``: the data
        samples of every view, to name odd images)."""
        images = [_stack(view, sample) for view, sample in
                  zip(views, list(samples) + [None] * len(views))]
        sizes = [tuple(img.shape[1:]) for img in images]
        check('HybridDataPreprocessor', 'view sizes', sizes,
              len(set(sizes)) == 1, 'one size (crop or resize the views to '
              'one size in the dataset pipeline)')
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
        :class:`ClsDataPreprocessor` does them, and in training its
        ``batch_augments`` with step-seeded draws."""
        mixing = training and self.batch_augments is not None
        with step_seeded_global_rng('batch_augments') if mixing else \
                nullcontext():
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
        # Views as lists of images (pseudo_collate) or as stacked
        # (N, C, H, W) tensors (default_collate).
        if isinstance(inputs, dict):
            return self._hybrid(data, training)
        multi_view = isinstance(inputs, (list, tuple)) and len(inputs) > 0 \
            and (isinstance(inputs[0], (list, tuple))
                 or getattr(inputs[0], 'ndim', 0) == 4)
        if multi_view and training and self.batch_augments is not None:
            raise ValueError(
                'HybridDataPreprocessor: batch_augments (e.g. Mixup, CutMix) '
                'mix single images and the balanced part of a hybrid batch, '
                'not multi-view batches, whose views the feature head reads; '
                'remove `batch_augments` from data_preprocessor')
        if multi_view or (training and self.view_single_images):
            # Several views of every image: mmpretrain's multi-view layout.
            views = inputs if multi_view else [inputs]
            n = len(views[0])
            images = self._to_device(views, [samples] * len(views))
            if training:
                if not multi_view:
                    images = images.repeat(self.num_views, 1, 1, 1)
                images = self._augment(self.batch_transforms, images, 'views')
            out = self._finish(images, samples, False)
            out['inputs'] = list(out['inputs'].split(n))
            return out
        if training and self.balanced_transforms:
            images = self._to_device([inputs], [samples])
            inputs = self._augment(self.balanced_transforms, images,
                                   'balanced')
        elif not self.pad_to_same_size and not isinstance(
                inputs, torch.Tensor):
            _check_one_size(inputs, samples)
        return self._finish(inputs, samples, training)

    def _hybrid(self, data: dict, training: bool) -> dict:
        """The hybrid batch: uniform views and balanced images."""
        inputs, samples = data['inputs'], data.get('data_samples') or {}
        # HybridPairDataset's layout: V views and the balanced batch, N each.
        views, balanced = list(inputs['views']), inputs['balanced']
        n = len(balanced)
        num_views = self.num_views or len(views)
        check('HybridDataPreprocessor', 'num_views', num_views,
              len(views) in (1, num_views), f'{len(views)}, the views of '
              'each uniform image the data gives (or give one view, viewed '
              'here)')
        images = self._to_device(
            views + [balanced], [samples.get('uniform')] * len(views) +
            [samples.get('balanced')])
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
        if training and self.batch_augments is not None:
            # Only the classifier's (balanced) images are mixed.
            uniform = self._finish(images[:-n], uniform_samples, False)
            balanced = self._finish(images[-n:], balanced_samples, True)
            tensors = uniform['inputs'].split(n) + (balanced['inputs'], )
        else:
            out = self._finish(images, flat, False)
            tensors = out['inputs'].split(n)
        return dict(
            inputs=dict(views=list(tensors[:num_views]),
                        balanced=tensors[num_views]),
            data_samples=dict(
                uniform=uniform_samples, balanced=balanced_samples))


__all__ = ['HybridDataPreprocessor']
