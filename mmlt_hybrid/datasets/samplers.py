"""Class-balanced samplers: single indices, and (uniform, class-balanced)
index pairs for hybrid training."""
from typing import Iterator, Optional, Sized, Tuple

import numpy as np
import torch
from mmengine.dataset import DefaultSampler

from mmpretrain.registry import DATA_SAMPLERS
from ..validation import check_int
from .utils import labels_of


class _ClassBalancedDraws(DefaultSampler):
    """mmengine's :class:`~mmengine.dataset.DefaultSampler` plus class-
    balanced draws seeded from ``(seed, epoch, rank)``: a class uniformly
    among the classes that have images, then an image of that class
    uniformly, with replacement. The common part of the samplers below.

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
        """A generator seeded from (seed, epoch, rank)."""
        # SeedSequence, not DefaultSampler's seed + epoch: it hashes
        # (seed, epoch, rank) into well-separated streams, so every rank
        # draws its own, seed 0 / epoch 1 does not repeat seed 1 / epoch 0,
        # and the draws do not reuse the uniform shuffle's stream (seeded
        # seed + epoch). Its entropy must be >= 0, hence the modulo; two
        # 32-bit words make torch's 64-bit seed.
        entropy = [
            int(self.seed) % 2**64,
            int(self.epoch) % 2**64,
            int(self.rank)
        ]
        state = np.random.SeedSequence(entropy).generate_state(
            2, dtype=np.uint32)
        g = torch.Generator()
        g.manual_seed(int(state[0]) << 32 | int(state[1]))
        return g

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
    """Yields class-balanced single indices: the "CE with class-balanced
    sampling" baseline.

    Every index is drawn independently: a class uniformly among the classes
    that have images, then an image of that class uniformly, with
    replacement (the draws of the balanced index ``j`` of
    :class:`ClassBalancedPairSampler`). An epoch has as many indices as
    :class:`~mmengine.dataset.DefaultSampler` gives each rank (the dataset's
    size split over the ranks, padded when ``round_up``). The draws come from
    a ``torch.Generator`` seeded from ``(seed, epoch, rank)``, so a resumed
    run (whose epoch ``DistSamplerSeedHook`` passes to :meth:`set_epoch`)
    draws what the uninterrupted run drew, and each rank and every epoch
    draws its own indices.

    Use it with any dataset of single samples, e.g. ``HybridPairDataset``
    or ``LongTailedDataset`` (``train_dataloader.sampler=dict(type=
    'ClassBalancedSampler')``).

    Args:
        dataset (Sized): The dataset; it must give one label per sample
            through ``get_gt_labels()`` or ``get_cat_ids(idx)``.
        seed (int, optional): Random seed, identical on all ranks. None
            takes a seed synchronised across ranks (``sync_random_seed``).
            Defaults to None.
        round_up (bool): Whether every rank gets the same number of indices
            (``ceil(len(dataset) / world_size)``). Defaults to True.
    """

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
    """Yields ``(i, j, seed)``: a uniform index, a class-balanced index and a
    seed for the per-sample augmentation of the pair.

    ``i`` runs exactly as mmengine's :class:`~mmengine.dataset.DefaultSampler`
    (this class subclasses it): shuffled by ``seed + epoch``, padded when
    ``round_up`` and sharded by rank, so every rank sees its own part of one
    common permutation of the (long-tailed) dataset per epoch.

    ``j`` is drawn independently for every ``i``: a class uniformly among the
    classes that have images, then an image of that class uniformly, with
    replacement (as :class:`ClassBalancedSampler` draws). The draws come from
    a ``torch.Generator`` seeded from ``(seed, epoch, rank)``, so:

    - they are the same for the same seed and epoch (a resumed run, whose
      epoch the runner restores and passes to :meth:`set_epoch` through
      ``DistSamplerSeedHook``, draws what the uninterrupted run drew);
    - each rank draws different balanced samples, and every epoch new ones.

    ``seed`` (62 bits, from the same generator) seeds the per-sample
    transforms of :class:`HybridPairDataset`, so a resumed run repeats them
    whatever the worker settings.

    The sampler runs in the main process, so it works with any
    ``num_workers``. Use it with :class:`HybridPairDataset`.

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
