"""mmlt_hybrid/datasets/utils.py: the labels and class counts of a dataset,
and the lazy initialisation that DatasetWrapper gives every wrapper."""
import logging

import numpy as np
import pytest
from mmengine.logging import MMLogger

from mmlt_hybrid.datasets import LongTailedDataset
from mmlt_hybrid.datasets.utils import (
    class_counts_of,
    labels_of,
    num_classes_of,
)
from mmlt_hybrid.datasets.wrapper import DatasetWrapper


class CatIdsOnly:
    """Labels through ``get_cat_ids`` only (no ``get_gt_labels``)."""

    def __init__(self, cat_ids, classes=None):
        self.cat_ids = cat_ids
        self.metainfo = {} if classes is None else dict(classes=classes)

    def __len__(self):
        return len(self.cat_ids)

    def get_cat_ids(self, idx):
        return self.cat_ids[idx]


def test_labels_of_reads_gt_labels_or_cat_ids(toy_label_dataset):
    labels = labels_of(toy_label_dataset([3, 0, 2, 2]))
    assert labels.dtype == np.int64 and labels.tolist() == [3, 0, 2, 2]
    labels = labels_of(CatIdsOnly([[1], [0], [1]]))
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match=r'sample 1 has labels \[0, 2\]'):
        labels_of(CatIdsOnly([[1], [0, 2]]))


def test_class_counts_of_counts_every_named_class(toy_label_dataset):
    # Classes named by metainfo count even without images (class 3 here).
    ds = toy_label_dataset([0, 2, 2, 1, 2], num_classes=4)
    assert class_counts_of(ds) == [1, 1, 3, 0]
    assert num_classes_of(ds) == 4
    # No class names: as many classes as the largest label says.
    ds = CatIdsOnly([[4], [0], [4]])
    assert class_counts_of(ds) == [1, 0, 0, 0, 2]
    assert num_classes_of(ds) == 5
    assert num_classes_of(CatIdsOnly([[0]], classes=['a', 'b'])) == 2


def test_class_counts_of_takes_a_wrappers_own_counts(toy_label_dataset):
    """A long-tailed wrapper (built lazily) is initialised first, and its own
    counts are taken: the kept images, int(10 * 5 ** (-i / 2))."""
    base = toy_label_dataset(np.repeat(np.arange(3), 10))
    lt = LongTailedDataset(base, imbalance_factor=5, lazy_init=True)
    counts = class_counts_of(lt)
    assert counts == [10, 4, 2] and all(type(c) is int for c in counts)
    assert lt._fully_initialized


class Doubler(DatasetWrapper):
    """The smallest wrapper: sample ``idx`` is twice the wrapped one."""

    def _init_wrapper(self):
        self.ready = True

    def _get_sample(self, idx):
        return 2 * self.dataset[idx]


def test_dataset_wrapper_initialises_lazily_on_first_item():
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        wrapper = Doubler([1, 2, 3], lazy_init=True)
        assert not wrapper._fully_initialized
        assert wrapper[2] == 6
        assert wrapper.ready and wrapper._fully_initialized
        assert wrapper[1] == 4
    finally:
        logger.removeHandler(handler)
    # mmengine's wrappers' warning, once (the first item initialised it).
    messages = [r.getMessage() for r in records]
    assert messages == [
        'Please call `full_init` method manually to accelerate the speed.'
    ]
