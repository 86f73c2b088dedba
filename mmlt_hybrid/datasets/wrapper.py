"""The part that the dataset wrappers share: holding the wrapped dataset."""
import copy
from typing import Union

from mmengine.dataset import BaseDataset

from mmpretrain.registry import DATASETS


class DatasetWrapper:
    """Base of the wrappers: the wrapped dataset, its metainfo, lazy init.

    Follows mmengine's wrappers (e.g. ``ClassBalancedDataset``): the wrapped
    dataset is built from its config (or taken as an instance), and
    :meth:`full_init` initialises it and then the wrapper, once, at build
    time or, with ``lazy_init=True``, when first needed.

    Args:
        dataset (BaseDataset | dict): The wrapped dataset or its config.
        lazy_init (bool): Whether to defer :meth:`full_init`.
            Defaults to False.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 lazy_init: bool = False) -> None:
        if isinstance(dataset, dict):
            self.dataset = DATASETS.build(dataset)
        elif hasattr(dataset, '__getitem__') and hasattr(dataset, '__len__'):
            self.dataset = dataset
        else:
            raise TypeError('dataset must be a dataset config (dict) or a '
                            f'dataset instance, got {type(dataset)}')
        self._metainfo = getattr(self.dataset, 'metainfo', {})
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """dict: The meta information of the wrapped dataset (a copy)."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Initialise the wrapped dataset, then the wrapper (once)."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self._init_wrapper()
        self._fully_initialized = True

    def _init_wrapper(self) -> None:
        """The wrapper's own initialisation; the wrapped set is ready."""
