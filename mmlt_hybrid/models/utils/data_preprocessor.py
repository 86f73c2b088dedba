"""Data preprocessor of hybrid batches: one copy to the device, augmentation
there, and the batch layout handed on explicitly."""
from contextlib import nullcontext
from typing import Optional, Sequence

import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

from ...randomness import step_generator, step_seeded_global_rng
from ...validation import check, check_bool, check_int
from .batch_transforms import apply_batch_transforms, build_batch_transforms


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
    odd = [
        f'{shape} ({_name(samples[k], k)})' for k, shape in enumerate(shapes)
        if shape != common
    ]
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


def _is_multi_view(inputs) -> bool:
    """Whether single-image ``inputs`` are mmpretrain's multi-view layout:
    V lists of images (``pseudo_collate``) or V (N, C, H, W) tensors
    (``default_collate``)."""
    return isinstance(inputs,
                      (list, tuple)) and len(inputs) > 0 and (isinstance(
                          inputs[0],
                          (list, tuple)) or getattr(inputs[0], 'ndim', 0) == 4)


@MODELS.register_module()
class HybridDataPreprocessor(ClsDataPreprocessor):
    """Preprocessor of hybrid batches, and of ordinary ones.

    Every image of a step is stacked on the host and copied to the model's
    device once; in training the views are made and augmented there by the
    batch transforms, every row with its own draws from a generator seeded
    per step (:func:`~mmlt_hybrid.randomness.step_generator`), then
    normalised as :class:`ClsDataPreprocessor` does. :meth:`forward` hands
    each batch layout to one method: pairs of :class:`HybridPairDataset`
    (:meth:`_pairs`), multi-view batches (:meth:`_views`), single images
    that the model reads as several views (:meth:`_views`, when
    :attr:`view_single_images` is set), or as several views and a view of
    the classifier's own (:meth:`_views_and_cls`, with
    :attr:`classifier_view`), and single images (:meth:`_singles`). The
    layouts are in docs/design.md.

    Args:
        num_views (int, optional): Views V of every uniform image handed to
            the model in training. None keeps the number of views the data
            has. Defaults to None.
        batch_transforms (list[dict], optional): Batch transforms of the
            uniform views, run in training only. Defaults to None (none).
        balanced_transforms (list[dict], optional): Batch transforms of the
            images the classifier alone reads: the balanced images, the
            classifier's own view and single-image training batches.
            Defaults to None, which uses ``batch_transforms``.
        channels_last (bool): Hand the images over in the channels-last
            memory format. Defaults to False.
        pad_to_same_size (bool): Pad a list of single images of several
            sizes (validation and test batches made by ``pseudo_collate``)
            as :class:`ClsDataPreprocessor` does, instead of refusing it.
            Defaults to False.
        **kwargs: The arguments of :class:`ClsDataPreprocessor` (``mean``,
            ``std``, ``to_rgb``, ``num_classes``, ``batch_augments``, ...).
            ``batch_augments`` (Mixup, CutMix) mix only the images the
            classifier alone reads, with step-seeded draws.

    Raises:
        TypeError: If a switch is not True or False.
        ValueError: If ``num_views`` is not None or a positive integer, or
            ``batch_augments`` come without ``num_classes``.
    """

    #: Whether a training batch of single images is viewed ``num_views``
    #: times (the multi-view layout) instead of handed on as one view; with
    #: :attr:`classifier_view` also once more for the classifier. Set by the
    #: model that reads them so (``HybridClassifier`` with ``cls_input``
    #: ``'uniform'`` or ``'own_view'``), not by the config.
    view_single_images = False
    classifier_view = False

    def __init__(self,
                 num_views: Optional[int] = None,
                 batch_transforms: Optional[Sequence[dict]] = None,
                 balanced_transforms: Optional[Sequence[dict]] = None,
                 channels_last: bool = False,
                 pad_to_same_size: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        owner = 'HybridDataPreprocessor'
        self.channels_last = check_bool(owner, 'channels_last', channels_last)
        self.pad_to_same_size = check_bool(owner, 'pad_to_same_size',
                                           pad_to_same_size)
        self.num_views = check_int(
            owner, 'num_views', num_views, optional=True)
        if self.batch_augments and not self.num_classes:
            raise ValueError(
                f'{owner}: batch_augments (Mixup, CutMix) mix one-hot scores '
                f'and need num_classes, got num_classes={self.num_classes!r};'
                ' set data_preprocessor.num_classes.')
        self.batch_transforms = build_batch_transforms(batch_transforms or [])
        self.balanced_transforms = self.batch_transforms if \
            balanced_transforms is None else build_batch_transforms(
                balanced_transforms)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess one batch, by its layout.

        Args:
            data (dict): Data from the dataloader, with ``inputs`` and
                optionally ``data_samples``.
            training (bool): Whether this is a training step.

        Returns:
            dict: ``inputs`` and ``data_samples`` in the layout of the batch.
        """
        inputs = data['inputs']
        if isinstance(inputs, dict):
            return self._pairs(data, training)
        if _is_multi_view(inputs):
            return self._views(data, training, viewed_here=False)
        if training and self.view_single_images:
            if self.classifier_view:
                return self._views_and_cls(data)
            return self._views(data, training, viewed_here=True)
        return self._singles(data, training)

    def _pairs(self, data: dict, training: bool) -> dict:
        """Pairs of :class:`HybridPairDataset`: V uniform views and the
        balanced images, N each."""
        inputs, samples = data['inputs'], data.get('data_samples') or {}
        views, balanced = list(inputs['views']), inputs['balanced']
        n = len(balanced)
        num_views = self.num_views or len(views)
        check(
            'HybridDataPreprocessor', 'num_views', num_views,
            len(views) in (1, num_views), f'{len(views)}, the views of '
            'each uniform image the data gives (or give one view, viewed '
            'here)')
        uniform_samples = samples.get('uniform')
        balanced_samples = samples.get('balanced')
        images = self._to_device(views + [balanced],
                                 [uniform_samples] * len(views) +
                                 [balanced_samples])
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
        if training and self.batch_augments is not None:
            # Only the classifier's (balanced) images are mixed.
            uniform = self._normalise(images[:-n], uniform_samples, False)
            balanced = self._normalise(images[-n:], balanced_samples, True)
            tensors = uniform['inputs'].split(n) + (balanced['inputs'], )
        else:
            flat = None if uniform_samples is None else (
                list(uniform_samples) + list(balanced_samples or []))
            tensors = self._normalise(images, flat, False)['inputs'].split(n)
        return dict(
            inputs=dict(
                views=list(tensors[:num_views]), balanced=tensors[num_views]),
            data_samples=dict(
                uniform=uniform_samples, balanced=balanced_samples))

    def _views(self, data: dict, training: bool, viewed_here: bool) -> dict:
        """Several views of every image, handed on as mmpretrain's
        multi-view layout (a list of V tensors (N, C, H, W)): the views the
        batch brings, or (``viewed_here``) ``num_views`` copies of every
        single image, each augmented with its own draws."""
        if training and self.batch_augments is not None:
            raise ValueError(
                'HybridDataPreprocessor: batch_augments (e.g. Mixup, CutMix) '
                'mix single images and the balanced part of a hybrid batch, '
                'not multi-view batches, whose views the feature head reads; '
                'remove `batch_augments` from data_preprocessor')
        samples = data.get('data_samples', None)
        views = [data['inputs']] if viewed_here else data['inputs']
        n = len(views[0])
        images = self._to_device(views, [samples] * len(views))
        if training:
            if viewed_here:
                images = images.repeat(self.num_views, 1, 1, 1)
            images = self._augment(self.batch_transforms, images, 'views')
        out = self._normalise(images, samples, False)
        out['inputs'] = list(out['inputs'].split(n))
        return out

    def _views_and_cls(self, data: dict) -> dict:
        """Single training images, each viewed ``num_views`` times with
        ``batch_transforms`` for the feature head and once more with
        ``balanced_transforms`` for the classifier (which alone reads it, so
        ``batch_augments`` mix it): ``inputs=dict(views=[V x (N, C, H, W)],
        cls=(N, C, H, W))``, ``data_samples`` the N samples."""
        samples = data.get('data_samples', None)
        images = self._to_device([data['inputs']], [samples])
        n = len(images)
        views = self._augment(self.batch_transforms,
                              images.repeat(self.num_views, 1, 1, 1), 'views')
        cls = self._augment(self.balanced_transforms, images, 'balanced')
        views = self._normalise(views, samples, False)['inputs'].split(n)
        cls = self._normalise(cls, samples, True)
        return dict(
            inputs=dict(views=list(views), cls=cls['inputs']),
            data_samples=cls['data_samples'])

    def _singles(self, data: dict, training: bool) -> dict:
        """Single images (validation, test, plain cross-entropy training):
        :class:`ClsDataPreprocessor`'s, after ``balanced_transforms`` in
        training."""
        inputs, samples = data['inputs'], data.get('data_samples', None)
        if training and self.balanced_transforms:
            images = self._to_device([inputs], [samples])
            inputs = self._augment(self.balanced_transforms, images,
                                   'balanced')
        elif not self.pad_to_same_size and not isinstance(
                inputs, torch.Tensor):
            _check_one_size(inputs, samples)
        return self._normalise(inputs, samples, training)

    def _to_device(self, views: Sequence,
                   samples: Sequence = ()) -> torch.Tensor:
        """Stack the collated views on the host, one after the other, and
        copy them to the device in one transfer (``samples``: the data
        samples of every view, to name odd images)."""
        images = [
            _stack(view, sample)
            for view, sample in zip(views,
                                    list(samples) + [None] * len(views))
        ]
        sizes = [tuple(img.shape[1:]) for img in images]
        check(
            'HybridDataPreprocessor', 'view sizes', sizes,
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

    def _normalise(self, images: torch.Tensor, data_samples,
                   mix: bool) -> dict:
        """Channel flip, float, normalisation and labels of one tensor, as
        :class:`ClsDataPreprocessor` does them; with ``mix`` also its
        ``batch_augments`` (Mixup, CutMix), with step-seeded draws."""
        mixing = mix and self.batch_augments is not None
        with step_seeded_global_rng('batch_augments') if mixing else \
                nullcontext():
            out = super().forward(
                dict(inputs=images, data_samples=data_samples), mix)
        if self.channels_last and isinstance(out['inputs'], torch.Tensor):
            out['inputs'] = out['inputs'].contiguous(
                memory_format=torch.channels_last)
        return out


__all__ = ['HybridDataPreprocessor']
