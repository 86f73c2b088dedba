"""A dataset wrapper that serves (uniform, class-balanced) sample pairs.

The hybrid networks train two branches on two batches every step: the
feature branch on a uniformly drawn image seen in ``V`` augmented views, the
classifier branch on a class-balanced image seen once. The sampler
(:class:`ClassBalancedPairSampler`) draws the index pair ``(i, j)``; this
wrapper reads both images and runs each through its own pipeline, or, for a
small set held whole in memory, picks both from one uint8 tensor.
"""
import numbers
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset, Compose
from mmengine.dataset.base_dataset import force_full_init
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS, TRANSFORMS
from mmpretrain.structures import DataSample

from ..randomness import seeded_global_rng
from ..validation import check_bool
from .utils import class_counts_of, labels_of
from .wrapper import DatasetWrapper


def _build_pipeline(pipeline: Sequence[Union[dict, Callable]],
                    key: str) -> Compose:
    """Build a list of transform configs (or callables) into a
    :class:`Compose`."""
    if not isinstance(pipeline, (list, tuple)) or not all(
            isinstance(t, dict) or callable(t) for t in pipeline):
        raise TypeError(f'HybridPairDataset: {key}={pipeline!r} is not '
                        'allowed; it must be a list of transform configs '
                        '(dicts) or callables.')
    # Wrappers such as MultiView build their inner transforms through the
    # default scope: use mmpretrain's when none is set (outside a Runner).
    scope = None if DefaultScope.get_current_instance() else 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        return Compose([
            TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
        ])


@DATASETS.register_module()
class HybridPairDataset(DatasetWrapper):
    """Pairs of a uniform sample and a class-balanced sample.

    The wrapped dataset only reads an image: give it ``pipeline=[]`` (its
    samples are then the raw data infos) or a loading-only pipeline such as
    ``[dict(type='CheckedLoadImageFromFile')]`` (mmcv's loader, naming a file
    it cannot read, whether it is decoded here per sample or all at once
    with ``hold_in_memory=True``). ``pipeline`` and
    ``balanced_pipeline`` here turn a read sample into a packed one. Two
    ways to use them:

    - **Augmentation on the device** (the shipped configs): ``pipeline``
      only packs the decoded image (``[dict(type='PackInputs')]``; for large
      images a random-resized crop to a fixed size first, one per view with
      ``MultiView``), and :class:`HybridDataPreprocessor` augments the whole
      batch on the model's device. With ``hold_in_memory=True`` the packed
      images of the whole set are stacked once, at initialisation, into one
      uint8 tensor, and a sample is a row of it: no decoding, no worker
      processes needed.
    - **Per-sample augmentation** (mmpretrain's usual way): ``pipeline``
      makes the ``V`` augmented views of the uniform sample (``MultiView`` +
      ``PackInputs``) and ``balanced_pipeline`` the one view of the balanced
      sample, in the workers.

    Indexing:

    - ``dataset[(i, j, seed)]`` or ``dataset[(i, j)]`` (what
      :class:`ClassBalancedPairSampler` yields)::

          dict(inputs=dict(views=[view_1(i), ..., view_V(i)],
                           balanced=view(j)),
               data_samples=dict(uniform=DataSample(i),
                                 balanced=DataSample(j)))

      With ``seed`` the per-sample transforms draw from generators seeded
      by it, so a resumed run repeats them whatever ``num_workers`` and
      ``persistent_workers`` say.
    - ``dataset[i]`` (any ordinary sampler): the ordinary packed sample that
      ``pipeline`` makes of sample ``i``, so the same dataset config serves
      the plain-CE baseline with ``DefaultSampler``.

    Args:
        dataset (BaseDataset | dict): The wrapped dataset or its config
            (usually a :class:`LongTailedDataset`).
        pipeline (list[dict | callable]): Transforms of the uniform sample,
            ending with ``PackInputs``.
        balanced_pipeline (list[dict | callable], optional): Transforms of the
            balanced sample, producing a single view and ending with
            ``PackInputs``. Defaults to None, which uses ``pipeline`` (it must
            then produce a single view).
        hold_in_memory (bool): Run ``pipeline`` (which must then be
            deterministic and give one fixed-size image per sample) over the
            whole set once and keep the images as one uint8 tensor. For small
            sets such as CIFAR-LT (CIFAR-10-LT: 37 MB). Defaults to False.
        lazy_init (bool): Whether to defer the wrapped dataset's
            initialisation until :meth:`full_init`. Defaults to False.

    Raises:
        TypeError: If a pipeline is not a list of transform configs or
            callables, or ``hold_in_memory`` is not a bool.
        ValueError: If ``hold_in_memory=True`` comes with a
            ``balanced_pipeline``, or a held sample is not one uint8 image
            of the size of the others.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 pipeline: Sequence[Union[dict, Callable]],
                 balanced_pipeline: Optional[Sequence[Union[dict,
                                                            Callable]]] = None,
                 hold_in_memory: bool = False,
                 lazy_init: bool = False) -> None:
        self.pipeline = _build_pipeline(pipeline, 'pipeline')
        self._balanced_is_default = balanced_pipeline is None
        self.balanced_pipeline = (
            self.pipeline if balanced_pipeline is None else _build_pipeline(
                balanced_pipeline, 'balanced_pipeline'))
        self.hold_in_memory = check_bool('HybridPairDataset', 'hold_in_memory',
                                         hold_in_memory)
        if hold_in_memory and not self._balanced_is_default:
            raise ValueError(
                'HybridPairDataset: with hold_in_memory=True both samples '
                'are rows of one stored tensor, so balanced_pipeline must be '
                'None; augment in data_preprocessor.batch_transforms / '
                'balanced_transforms instead.')
        self._images: Optional[torch.Tensor] = None
        super().__init__(dataset, lazy_init=lazy_init)

    def _init_wrapper(self) -> None:
        """Decode and stack the whole set when it is held in memory."""
        if not self.hold_in_memory:
            return
        images = []
        for idx in range(len(self.dataset)):
            packed = self._run(self.pipeline, idx, 'pipeline')
            image = packed['inputs']
            if not isinstance(image, torch.Tensor) or image.dtype != \
                    torch.uint8 or (images and image.shape != images[0].shape):
                path = getattr(packed['data_samples'], 'metainfo',
                               {}).get('img_path')
                raise ValueError(
                    'HybridPairDataset(hold_in_memory=True): pipeline (a '
                    'loading-only one ending with PackInputs) must give '
                    'every sample as one uint8 image of one size, got '
                    f'{_describe(image)} for index {idx}' +
                    (f' ({path})' if path else '') +
                    (f' after {_describe(images[0])}' if images else ''))
            images.append(image)
        self._images = torch.stack(images)
        self._labels = torch.from_numpy(labels_of(self.dataset))

    @property
    @force_full_init
    def class_counts(self) -> List[int]:
        """list[int]: Images of every class, label order (from the wrapped
        dataset's ``class_counts`` when it has one, else counted)."""
        return class_counts_of(self.dataset)

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """Labels of the ``idx``-th sample of the wrapped dataset."""
        return self.dataset.get_cat_ids(idx)

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """np.ndarray: The label of every sample of the wrapped dataset."""
        return labels_of(self.dataset)

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """Data info of the ``idx``-th sample of the wrapped dataset."""
        return self.dataset.get_data_info(idx)

    @force_full_init
    def __len__(self) -> int:
        return len(self.dataset)

    def _run(self, pipeline: Compose, idx: int, key: str) -> dict:
        """Sample ``idx`` of the wrapped dataset through ``pipeline``."""
        packed = self._read(idx, pipeline)
        if not (isinstance(packed, dict) and 'inputs' in packed
                and 'data_samples' in packed):
            raise ValueError(f'{key} must end with PackInputs; it gave '
                             f'{packed!r} for index {idx}')
        return packed

    def _stored(self, idx: int) -> dict:
        """Sample ``idx`` of the set held in memory, packed."""
        # A copy of the row, not a view: a view sent from a worker would
        # carry the whole stored tensor with it.
        return dict(
            inputs=self._images[idx].clone(),
            data_samples=DataSample().set_gt_label(self._labels[idx:idx + 1]))

    def _uniform(self, idx: int) -> dict:
        if self.hold_in_memory:
            return self._stored(idx)
        return self._run(self.pipeline, idx, 'pipeline')

    def _balanced(self, idx: int) -> dict:
        if self.hold_in_memory:
            return self._stored(idx)
        key = ('pipeline (used as balanced_pipeline)'
               if self._balanced_is_default else 'balanced_pipeline')
        packed = self._run(self.balanced_pipeline, idx, key)
        view = packed['inputs']
        if isinstance(view, (list, tuple)):
            if len(view) != 1:
                raise ValueError(f'{key} must produce a single view for the '
                                 f'class-balanced sample, got {len(view)} '
                                 'views; set a one-view balanced_pipeline')
            packed['inputs'] = view[0]
        return packed

    def _get_sample(self, idx):
        """A packed sample (``int`` index) or pair (pair or triple)."""
        if isinstance(idx, numbers.Integral):
            return self._uniform(int(idx))
        if not (isinstance(idx, (tuple, list)) and len(idx) in (2, 3)
                and all(isinstance(k, numbers.Integral) for k in idx)):
            raise TypeError('HybridPairDataset takes an int index, a pair '
                            '(i, j) or a triple (i, j, seed) of ints, got '
                            f'{idx!r}')
        i, j = int(idx[0]), int(idx[1])
        if len(idx) == 3 and not self.hold_in_memory:
            # The per-sample transforms draw from the global generators.
            # A data worker's serve nothing else: seeded, not restored.
            in_worker = torch.utils.data.get_worker_info() is not None
            with seeded_global_rng(int(idx[2]), restore=not in_worker):
                uniform, balanced = self._uniform(i), self._balanced(j)
        else:
            uniform, balanced = self._uniform(i), self._balanced(j)
        views = uniform['inputs']
        views = list(views) if isinstance(views, (list, tuple)) else [views]
        return dict(
            inputs=dict(views=views, balanced=balanced['inputs']),
            data_samples=dict(
                uniform=uniform['data_samples'],
                balanced=balanced['data_samples']))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(dataset='
                f'{type(self.dataset).__name__}, pipeline={self.pipeline}, '
                f'balanced_pipeline={self.balanced_pipeline}, '
                f'hold_in_memory={self.hold_in_memory})')


def _describe(image) -> str:
    if isinstance(image, torch.Tensor):
        return f'a {image.dtype} tensor of shape {tuple(image.shape)}'
    return f'{type(image).__name__}'


__all__ = ['HybridPairDataset']
