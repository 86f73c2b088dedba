"""A dataset wrapper that serves (uniform, class-balanced) sample pairs.

The hybrid networks train two branches on two batches every step: the
feature branch on a uniformly drawn image seen in ``V`` augmented views, the
classifier branch on a class-balanced image seen once. The sampler
(:class:`ClassBalancedPairSampler`) draws the index pair ``(i, j)``; this
wrapper reads both images and runs each through its own pipeline.
"""
import logging
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset, Compose
from mmengine.dataset.base_dataset import force_full_init
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from mmpretrain.registry import DATASETS, TRANSFORMS
from .long_tailed import labels_of
from .wrapper import DatasetWrapper


def _build_pipeline(pipeline: Optional[Sequence[Union[dict, Callable]]],
                    key: str) -> Compose:
    """Build a list of transform configs into a :class:`Compose`."""
    if not isinstance(pipeline, (list, tuple)):
        raise TypeError(f'{key} must be a list of transform configs, got '
                        f'{type(pipeline).__name__}: {pipeline!r}')
    transforms = []
    # Wrappers such as MultiView build their inner transforms through the
    # default scope: use mmpretrain's when none is set (outside a Runner).
    scope = None if DefaultScope.get_current_instance() else 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        for transform in pipeline:
            if isinstance(transform, dict):
                transforms.append(TRANSFORMS.build(transform))
            elif callable(transform):
                transforms.append(transform)
            else:
                raise TypeError(
                    f'every item of {key} must be a transform config '
                    f'(dict) or a callable, got {transform!r}')
    return Compose(transforms)


@DATASETS.register_module()
class HybridPairDataset(DatasetWrapper):
    """Pairs of a multi-view uniform sample and a one-view balanced sample.

    The wrapped dataset only reads an image: give it ``pipeline=[]`` (its
    samples are then the raw data infos) or a loading-only pipeline such as
    ``[dict(type='LoadImageFromFile')]``; the augmentations and the packing
    belong to ``pipeline`` and ``balanced_pipeline`` here. Indexing:

    - ``dataset[(i, j)]`` (what :class:`ClassBalancedPairSampler` yields):
      ``dict(inputs=[view_1(i), ..., view_V(i), view(j)],
      data_samples=[DataSample(i), DataSample(j)])`` where ``pipeline``
      gives the ``V`` views of sample ``i`` (mmpretrain's ``MultiView`` +
      ``PackInputs``; a pipeline without ``MultiView`` gives ``V = 1``) and
      ``balanced_pipeline`` the single view of sample ``j``.
    - ``dataset[i]`` (any ordinary sampler): the ordinary packed sample
      ``pipeline`` makes of sample ``i``, so the same dataset config serves
      the plain-CE baseline with ``DefaultSampler`` and a one-view
      ``pipeline``.

    Args:
        dataset (BaseDataset | dict): The wrapped dataset or its config
            (usually a :class:`LongTailedDataset`).
        pipeline (list[dict | callable]): Transforms of the uniform sample,
            ending with ``PackInputs``.
        balanced_pipeline (list[dict | callable], optional): Transforms of the
            balanced sample, producing a single view and ending with
            ``PackInputs``. Defaults to None, which uses ``pipeline`` (it must
            then produce a single view).
        lazy_init (bool): Whether to defer the wrapped dataset's
            initialisation until :meth:`full_init`. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 pipeline: Sequence[Union[dict, Callable]],
                 balanced_pipeline: Optional[Sequence[Union[dict,
                                                            Callable]]] = None,
                 lazy_init: bool = False) -> None:
        self.pipeline = _build_pipeline(pipeline, 'pipeline')
        self._balanced_is_default = balanced_pipeline is None
        self.balanced_pipeline = (
            self.pipeline if balanced_pipeline is None else _build_pipeline(
                balanced_pipeline, 'balanced_pipeline'))
        super().__init__(dataset, lazy_init=lazy_init)

    @property
    @force_full_init
    def class_counts(self) -> List[int]:
        """list[int]: Images of every class, label order (from the wrapped
        dataset's ``class_counts`` when it has one, else counted)."""
        counts = getattr(self.dataset, 'class_counts', None)
        if counts is not None:
            return list(counts)
        labels = self.get_gt_labels()
        classes = self._metainfo.get('classes', None)
        num_classes = len(classes) if classes else int(labels.max()) + 1
        return np.bincount(labels, minlength=num_classes).tolist()

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

    def _load(self, idx: int) -> dict:
        """The wrapped dataset's sample ``idx`` (its pipeline applied)."""
        data = self.dataset[idx]
        if not isinstance(data, dict):
            raise TypeError(
                'the wrapped dataset must return a dict per sample (give it '
                "pipeline=[] or a loading-only pipeline), got "
                f'{type(data).__name__} for index {idx}')
        return data

    @staticmethod
    def _run(pipeline: Compose, data: dict, idx: int, key: str) -> dict:
        packed = pipeline(data)
        if packed is None or 'inputs' not in packed \
                or 'data_samples' not in packed:
            raise ValueError(
                f'{key} must end with PackInputs and give a dict with '
                f"'inputs' and 'data_samples'; it gave {packed!r} for "
                f'index {idx}')
        return packed

    def __getitem__(self, idx):
        if not self._fully_initialized:
            print_log(
                'Please call `full_init` method manually to accelerate '
                'the speed.',
                logger='current',
                level=logging.WARNING)
            self.full_init()
        if isinstance(idx, (int, np.integer)):
            return self._run(self.pipeline, self._load(int(idx)), int(idx),
                             'pipeline')
        if not (isinstance(idx, (tuple, list)) and len(idx) == 2
                and all(isinstance(k, (int, np.integer)) for k in idx)):
            raise TypeError('HybridPairDataset takes an int index or a pair '
                            f'(i, j) of int indices, got {idx!r}')
        i, j = int(idx[0]), int(idx[1])

        uniform = self._run(self.pipeline, self._load(i), i, 'pipeline')
        views = uniform['inputs']
        if isinstance(views, torch.Tensor):
            views = [views]
        elif not isinstance(views, (list, tuple)):
            raise TypeError('pipeline must produce a tensor or a list of '
                            f'view tensors as inputs, got {type(views)}')

        balanced_key = ('pipeline (used as balanced_pipeline)'
                        if self._balanced_is_default else 'balanced_pipeline')
        balanced = self._run(self.balanced_pipeline, self._load(j), j,
                             balanced_key)
        view = balanced['inputs']
        if isinstance(view, (list, tuple)):
            if len(view) != 1:
                raise ValueError(
                    f'{balanced_key} must produce a single view for the '
                    f'class-balanced sample, got {len(view)} views; set a '
                    'one-view balanced_pipeline')
            view = view[0]
        return dict(
            inputs=list(views) + [view],
            data_samples=[uniform['data_samples'], balanced['data_samples']])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(dataset='
                f'{type(self.dataset).__name__}, pipeline={self.pipeline}, '
                f'balanced_pipeline={self.balanced_pipeline})')


__all__ = ['HybridPairDataset']
