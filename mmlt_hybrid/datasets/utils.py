"""What the package reads from a classification dataset: the label of every
sample, the images of every class, the number of classes.

The one home of these for the wrappers, the samplers, the hooks and the
tools (as ``mmpretrain/models/losses/utils.py`` is for the losses).
"""
from typing import List

import numpy as np


def labels_of(dataset) -> np.ndarray:
    """The single label of every sample of a classification dataset.

    Uses ``get_gt_labels()`` when the dataset has it (mmpretrain datasets),
    otherwise ``get_cat_ids(idx)`` for every index.

    Args:
        dataset: A fully initialised dataset.

    Returns:
        np.ndarray: int64 labels, one per sample.

    Raises:
        ValueError: If a sample has other than exactly one label.
    """
    if hasattr(dataset, 'get_gt_labels'):
        labels = np.asarray(dataset.get_gt_labels())
        if labels.ndim == 1 and len(labels) == len(dataset):
            return labels.astype(np.int64)
    labels = np.empty(len(dataset), dtype=np.int64)
    for idx in range(len(dataset)):
        cat_ids = list(dataset.get_cat_ids(idx))
        if len(cat_ids) != 1:
            raise ValueError(
                'a long-tailed classification set needs exactly one label '
                f'per image, but sample {idx} has labels {cat_ids}')
        labels[idx] = int(cat_ids[0])
    return labels


def _named_classes(dataset) -> int:
    """How many classes ``metainfo['classes']`` names (0 if none)."""
    return len((getattr(dataset, 'metainfo', None) or {}).get('classes') or ())


def class_counts_of(dataset) -> List[int]:
    """Images of every class of a dataset, label order.

    The dataset is fully initialised first (``full_init``, when it has one).
    Its own ``class_counts`` are taken when it has them
    (:class:`LongTailedDataset`, :class:`HybridPairDataset`), else its labels
    (:func:`labels_of`) are counted over the classes that
    ``metainfo['classes']`` names (a named class without images counts 0),
    or up to the largest label when no classes are named.

    Args:
        dataset: A built dataset.

    Returns:
        list[int]: The count of every class.
    """
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    counts = getattr(dataset, 'class_counts', None)
    if counts is not None:
        return [int(c) for c in counts]
    return np.bincount(
        labels_of(dataset), minlength=_named_classes(dataset)).tolist()


def num_classes_of(dataset) -> int:
    """The number of classes of a dataset: as many as ``metainfo['classes']``
    names, else the length of :func:`class_counts_of`.

    Args:
        dataset: A built dataset.

    Returns:
        int: The number of classes.
    """
    return _named_classes(dataset) or len(class_counts_of(dataset))


__all__ = ['labels_of', 'class_counts_of', 'num_classes_of']
