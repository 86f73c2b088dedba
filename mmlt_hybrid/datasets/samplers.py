"""Class-balanced samplers: single indices, and (uniform, class-balanced)
index pairs for hybrid training."""
from typing import Iterator, Optional, Sized, Tuple

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmpretrain.registry import DATA_SAMPLERS

from ..randomness import derive_seed
from ..validation import check_int
from .utils import labels_of


class _ClassBalancedDraws(DefaultSampler):
    """mmengine's :class:`~mmengine.dataset.DefaultSampler` plus class-
    balanced draws (a class uniformly among those with images, then one of
    its images uniformly, with replacement) from a generator seeded from
    ``(seed, epoch, rank)``.

    Args:
        dataset (Sized): The dataset; it must give one label per sample
            through ``get_gt_labels()`` or ``get_cat_ids(idx)``.
        shuffle (bool): Passed to ``DefaultSampler``.
        seed (int, optional): Random seed, identical on all ranks. None
            takes a seed synchronised across ranks (``sync_random_seed``).
        round_up (bool): Passed to ``DefaultSampler``.

    Raises:
        ValueError: If ``seed`` is neither None nor an integer, or the
            dataset is empty or has a negative label.
    """

    def __init__(self, dataset: Sized, shuffle: bool, seed: Optional[int],
                 round_up: bool) -> None:
        check_int(
            type(self).__name__, 'seed', seed, min_value=None, optional=True)
        super().__init__(
            dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        labels = labels_of(dataset)
        if len(labels) == 0:
            raise ValueError(f'{type(self).__name__} got an empty dataset')
        if labels.min() < 0:
            raise ValueError(f'labels must be >= 0, got {labels.min()}')
        # Indices grouped by class: the images of class c are
        # by_class[offsets[c]:offsets[c] + counts[c]].
        counts = np.bincount(labels)
        present = np.flatnonzero(counts)
        self._by_class = torch.from_numpy(
            np.argsort(labels, kind='stable').astype(np.int64))
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._class_offsets = torch.from_numpy(offsets[present].astype(
            np.int64))
        self._class_sizes = torch.from_numpy(counts[present].astype(np.int64))

    def _generator(self) -> torch.Generator:
        """A generator seeded from (seed, epoch, rank) (not seed + epoch,
        the uniform shuffle's seed)."""
        return torch.Generator().manual_seed(
            derive_seed((self.seed, self.epoch, self.rank), 64))

    def balanced_indices(self, num: int) -> torch.Tensor:
        """Draw ``num`` class-balanced indices for the current seed, epoch
        and rank.

        Args:
            num (int): How many indices to draw.

        Returns:
            torch.Tensor: int64 indices into the dataset.
        """
        return self._draw_balanced(num, self._generator())

    def _draw_balanced(self, num: int, g: torch.Generator) -> torch.Tensor:
        cls = torch.randint(
            len(self._class_sizes), (num, ), generator=g, dtype=torch.int64)
        u = torch.rand(num, generator=g, dtype=torch.float64)
        sizes = self._class_sizes[cls]
        pos = torch.minimum((u * sizes).long(), sizes - 1)
        return self._by_class[self._class_offsets[cls] + pos]


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(_ClassBalancedDraws):
    """Yields class-balanced single indices (the "CE with class-balanced
    sampling" baseline), as many per rank and epoch as
    :class:`~mmengine.dataset.DefaultSampler` gives, each drawn as the
    balanced index ``j`` of :class:`ClassBalancedPairSampler`.

    Args:
        dataset (Sized): The dataset; it must give one label per sample
            through ``get_gt_labels()`` or ``get_cat_ids(idx)``.
        seed (int, optional): Random seed, identical on all ranks. None
            takes a seed synchronised across ranks (``sync_random_seed``).
            Defaults to None.
        round_up (bool): Whether every rank gets the same number of indices
            (``ceil(len(dataset) / world_size)``). Defaults to True.
    """

    #: Every index it yields is class-balanced (see ModelDataCheckHook).
    class_balanced = True

    def __init__(self,
                 dataset: Sized,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(dataset, shuffle=False, seed=seed, round_up=round_up)

    def __iter__(self) -> Iterator[int]:
        """Iterate the class-balanced indices of this rank and epoch."""
        return iter(self.balanced_indices(self.num_samples).tolist())


@DATA_SAMPLERS.register_module()
class ClassBalancedPairSampler(_ClassBalancedDraws):
    """Yields ``(i, j, seed)`` for :class:`HybridPairDataset`: ``i`` as
    :class:`~mmengine.dataset.DefaultSampler` yields it, ``j`` class-balanced
    and ``seed`` (below 2**62) for the pair's per-sample transforms, both
    drawn from the generator of ``(seed, epoch, rank)``.

    Args:
        dataset (Sized): The dataset; it must give one label per sample
            through ``get_gt_labels()`` or ``get_cat_ids(idx)``.
        shuffle (bool): Whether to shuffle the uniform indices.
            Defaults to True.
        seed (int, optional): Random seed, identical on all ranks. None
            takes a seed synchronised across ranks (``sync_random_seed``).
            Defaults to None.
        round_up (bool): Whether to pad the uniform indices so that every rank
            gets the same number. Defaults to True.
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(
            dataset, shuffle=shuffle, seed=seed, round_up=round_up)

    def __iter__(self) -> Iterator[Tuple[int, int, int]]:
        """Iterate the ``(uniform, balanced, seed)`` triples of this rank."""
        uniform = list(super().__iter__())
        g = self._generator()
        balanced = self._draw_balanced(len(uniform), g).tolist()
        seeds = torch.randint(2**62, (len(uniform), ), generator=g).tolist()
        return iter(list(zip(uniform, balanced, seeds)))


__all__ = ['ClassBalancedSampler', 'ClassBalancedPairSampler']
