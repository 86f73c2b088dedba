"""A dataset wrapper that subsamples a dataset into a long-tailed one.

The default settings reproduce the CIFAR-LT protocol of Cao et al. (2019),
which every later long-tail paper uses: class ``i`` (natural label order,
``i = 0 .. C-1``) keeps ``n_i = int(n_max * IF ** (-i / (C - 1)))`` images,
and within each class the kept images are the first ``n_i`` of the class's
indices after shuffling them with numpy's legacy RNG seeded 0, one class after
the other in label order.
"""
import logging
from typing import List, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.dataset.base_dataset import force_full_init
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from ..validation import check_choice, check_int, check_number
from .utils import labels_of
from .wrapper import DatasetWrapper

PROFILES = ('exp', 'step', 'none')


def long_tailed_counts(n_max: int,
                       num_classes: int,
                       imbalance_factor: float,
                       profile: str = 'exp') -> List[int]:
    """Target number of images per class of a long-tailed subset.

    Args:
        n_max (int): Images of the most frequent class (class 0); 5000 for
            CIFAR-10 and 500 for CIFAR-100 in the standard protocol.
        num_classes (int): Number of classes ``C``.
        imbalance_factor (float): ``IF = n_max / n_min``, at least 1.
        profile (str): ``'exp'``: ``n_i = int(n_max * IF ** (-i / (C - 1)))``
            (computed as Cao et al. do, ``n_max * (1 / IF) ** (i / (C - 1))``);
            ``'step'``: the first ``C // 2`` classes keep ``n_max``, the
            others ``int(n_max / IF)``; ``'none'``: every class ``n_max``.

    Returns:
        list[int]: The count of every class, in label order.

    Raises:
        ValueError: If an argument is outside the range given above.
    """
    owner = 'long_tailed_counts'
    n_max = check_int(owner, 'n_max', n_max)
    num_classes = check_int(owner, 'num_classes', num_classes)
    ratio = 1.0 / check_number(
        owner, 'imbalance_factor', imbalance_factor, low=1)
    check_choice(owner, 'profile', profile, PROFILES)
    if profile == 'exp':
        if num_classes == 1:
            return [n_max]
        return [
            int(n_max * ratio**(i / (num_classes - 1.0)))
            for i in range(num_classes)
        ]
    if profile == 'step':
        head = num_classes // 2
        return [n_max] * head + [int(n_max * ratio)] * (num_classes - head)
    return [n_max] * num_classes


@DATASETS.register_module()
class LongTailedDataset(DatasetWrapper):
    """A long-tailed subset of a (balanced) classification dataset.

    With the defaults it selects exactly the images of the standard CIFAR-LT
    protocol (Cao et al., 2019): class ``i`` keeps
    ``n_i = int(n_max * IF ** (-i / (C - 1)))`` images, ``n_max`` being the
    largest class of the wrapped set (5000 / 500 for the balanced CIFAR-10 /
    CIFAR-100 training sets). Within each class the kept images are the first
    ``n_i`` of the class's indices (in their original order) after shuffling
    with ``np.random.RandomState(seed)`` -- the same stream as
    ``np.random.seed(seed)`` -- one class after the other in label order. The
    wrapper keeps the selection in that order (class by class, shuffled order
    within a class), like the reference implementation.

    Samples come from the wrapped dataset, through its own pipeline.
    Like mmengine's dataset wrappers it supports ``lazy_init``.

    Args:
        dataset (BaseDataset | dict): The dataset to subsample, or its config.
            Each sample must have exactly one label.
        imbalance_factor (float): ``IF = n_max / n_min``, at least 1.
            Defaults to 100.
        profile (str): ``'exp'`` (the CIFAR-LT formula above), ``'step'``
            (the first ``C // 2`` classes keep ``n_max`` images, the others
            ``int(n_max / IF)``) or ``'none'`` (keep every image; ``IF`` is
            ignored). Defaults to ``'exp'``.
        seed (int): Seed of the legacy numpy RNG that picks the images of a
            class. Defaults to 0.
        lazy_init (bool): Whether to defer the selection until
            :meth:`full_init`. Defaults to False.

    Raises:
        ValueError: If a setting is outside the range given above; when the
            selection is made, if a class cannot keep between 1 and all of
            its images, or a label is outside the classes.
        FileNotFoundError: If the files of the wrapped set (mmpretrain's
            ``CIFAR10`` / ``CIFAR100``) are missing and cannot be
            downloaded; the message says where they were looked for and how
            to provide them, and no folder made by the attempt is left.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 imbalance_factor: float = 100.,
                 profile: str = 'exp',
                 seed: int = 0,
                 lazy_init: bool = False) -> None:
        owner = 'LongTailedDataset'
        self.imbalance_factor = check_number(
            owner, 'imbalance_factor', imbalance_factor, low=1)
        self.profile = check_choice(owner, 'profile', profile, PROFILES)
        # A seed of numpy's legacy RNG: an integer in [0, 2**32).
        self.seed = check_int(owner, 'seed', seed, min_value=0)
        check_number(owner, 'seed', seed, high=2**32 - 1)
        super().__init__(dataset, lazy_init=lazy_init)

    def _class_name(self, label: int) -> str:
        classes = self._metainfo.get('classes', None)
        if classes is not None and label < len(classes):
            return f'class {label} ({classes[label]!r})'
        return f'class {label}'

    def _refusal(self, label: int, size: int, target: int, n_max: int) -> str:
        """Why class ``label`` (``size`` images) cannot keep ``target``."""
        name = self._class_name(label)
        if size == 0:
            return (f'{name} has no images in the wrapped dataset; every '
                    'class needs at least one')
        setting = (f"(profile='{self.profile}', n_max={n_max}, "
                   f'imbalance_factor={self.imbalance_factor:g})')
        if target == 0:
            return (f'{name} would keep 0 images {setting}; lower '
                    'imbalance_factor')
        return (f'{name} has {size} images, fewer than its target count '
                f'{target} {setting}')

    def _init_wrapper(self) -> None:
        """Select the long-tailed subset of the initialised wrapped set."""
        labels = labels_of(self.dataset)
        if len(labels) == 0:
            raise ValueError('LongTailedDataset: the wrapped dataset has no '
                             'images')
        num_classes = len(self._metainfo.get('classes') or
                          ()) or int(labels.max()) + 1
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f'LongTailedDataset: labels must lie in [0, {num_classes}) '
                f'(the wrapped dataset has {num_classes} classes), got '
                f'labels from {labels.min()} to {labels.max()}')

        # Indices of every class in their original order.
        per_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
        sizes = [len(idx) for idx in per_class]
        targets = sizes if self.profile == 'none' else long_tailed_counts(
            max(sizes), num_classes, self.imbalance_factor, self.profile)
        for c, (size, target) in enumerate(zip(sizes, targets)):
            if not 0 < target <= size:
                raise ValueError(self._refusal(c, size, target, max(sizes)))

        if self.profile == 'none':
            selected = per_class
        else:
            # One legacy RNG for all classes, in label order: the CIFAR-LT
            # selection of the reference implementation (np.random.seed).
            rng = np.random.RandomState(self.seed)
            selected = []
            for idx, target in zip(per_class, targets):
                shuffled = idx.copy()
                rng.shuffle(shuffled)
                selected.append(shuffled[:target])

        self.indices = np.concatenate(selected).astype(np.int64)
        self.labels = labels[self.indices]
        self._class_counts = [len(s) for s in selected]
        print_log(
            f'LongTailedDataset: kept {len(self.indices)} of {len(labels)} '
            f"images (profile='{self.profile}', imbalance_factor="
            f'{self.imbalance_factor:g}, seed={self.seed}); per class: '
            f'{self._class_counts}',
            logger='current',
            level=logging.DEBUG)

    @property
    @force_full_init
    def class_counts(self) -> List[int]:
        """list[int]: Number of kept images of every class, label order."""
        return list(self._class_counts)

    @force_full_init
    def get_ori_index(self, idx: int) -> int:
        """Index in the wrapped dataset of the ``idx``-th kept sample."""
        return int(self.indices[idx])

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """Label of the ``idx``-th kept sample, as a one-element list."""
        return [int(self.labels[idx])]

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """np.ndarray: Labels of all kept samples."""
        return self.labels.copy()

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """Annotation (data info) of the ``idx``-th kept sample."""
        return self.dataset.get_data_info(self.get_ori_index(idx))

    @force_full_init
    def __len__(self) -> int:
        return len(self.indices)

    def _get_sample(self, idx: int):
        """The wrapped dataset's sample behind the ``idx``-th kept one."""
        return self._read(self.get_ori_index(idx), shown=idx)

    def get_subset_(self, indices: Union[Sequence[int], int]) -> None:
        """Not supported: subsample the wrapped dataset instead."""
        raise NotImplementedError(
            'LongTailedDataset does not support get_subset_; set indices on '
            'the wrapped dataset.')

    def get_subset(self, indices: Union[Sequence[int], int]) -> None:
        """Not supported: subsample the wrapped dataset instead."""
        raise NotImplementedError(
            'LongTailedDataset does not support get_subset; set indices on '
            'the wrapped dataset.')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(profile={self.profile!r}, '
                f'imbalance_factor={self.imbalance_factor:g}, '
                f'seed={self.seed}, dataset={type(self.dataset).__name__})')


__all__ = ['LongTailedDataset', 'long_tailed_counts', 'PROFILES']
