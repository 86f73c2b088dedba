"""The part that the dataset wrappers share: holding the wrapped dataset."""
import copy
import logging
import os.path as osp
import shutil
from typing import Union

from mmengine.dataset import BaseDataset
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS


def build_wrapped(cfg: dict, owner: str):
    """Build a wrapped dataset from its config, saying plainly when a
    dataset that downloads its files finds none.

    mmpretrain's ``CIFAR10`` / ``CIFAR100`` download their archive into
    ``data_root`` when its files are missing; without internet that fails
    with a bare ``URLError`` and leaves the folders it made behind. When
    the files of such a dataset (a class with ``url``, ``base_folder`` and
    ``train_list`` / ``test_list``) are missing before the build and the
    build fails, the folders this build created (the part of ``data_root``
    that did not exist) are removed and the error says where the data was
    looked for and how to provide it.

    Args:
        cfg (dict): The dataset config.
        owner (str): The wrapper's name, for the message.

    Returns:
        The built dataset.

    Raises:
        FileNotFoundError: If the files were missing and could not be got.
    """
    cls = cfg.get('type')
    cls = DATASETS.get(cls) if isinstance(cls, str) else cls
    if not all(
            hasattr(cls, key)
            for key in ('url', 'base_folder', 'train_list', 'test_list')):
        return DATASETS.build(cfg)
    root = osp.abspath(osp.expanduser(str(cfg.get('data_root') or '')))
    folder = osp.join(root, cls.base_folder)
    names = [entry[0] for entry in cls.train_list + cls.test_list]
    if all(osp.isfile(osp.join(folder, name)) for name in names):
        return DATASETS.build(cfg)
    new = root  # the top-most folder of data_root that does not exist yet
    while not osp.exists(osp.dirname(new)):
        new = osp.dirname(new)
    new = None if osp.exists(new) else new
    try:
        return DATASETS.build(cfg)
    except Exception as exc:
        removed = new is not None and osp.isdir(new) and is_main_process()
        if removed:
            shutil.rmtree(new)
        how = (f'downloading {cls.url} failed ({type(exc).__name__}: '
               f'{exc})' if cfg.get('download', True) else 'download=False')
        raise FileNotFoundError(
            f'{owner}: no {cls.__name__} data at data_root={root!r} (looked '
            f'for {", ".join(names)} in {folder!r}), and {how}. Provide it: '
            'run once with internet access (and download=True, the '
            f'default) to download it there, or extract {cls.url} into '
            'data_root yourself, or set data_root (train_dataloader.dataset.'
            'dataset.dataset.data_root in the shipped configs) to the folder '
            f'that holds {cls.base_folder}, or read an image-folder copy '
            'with the *_folder data configs (e.g. '
            'configs/_base_/datasets/cifar10lt_folder.py).' +
            (f' Removed {new!r}, made by this run.' if removed else '')
        ) from exc


class DatasetWrapper:
    """Base of the wrappers: the wrapped dataset, its metainfo, lazy init.

    Follows mmengine's wrappers (e.g. ``ClassBalancedDataset``): the wrapped
    dataset is built from its config (or taken as an instance), and
    :meth:`full_init` initialises it and then the wrapper, once, at build
    time or, with ``lazy_init=True``, when first needed (the first item
    read initialises a wrapper not yet initialised, with mmengine's
    warning). A subclass implements :meth:`_init_wrapper` and
    :meth:`_get_sample`. A wrapped CIFAR
    set whose files are missing and cannot be downloaded is reported by
    :func:`build_wrapped`, which leaves no folder behind.

    Args:
        dataset (BaseDataset | dict): The wrapped dataset or its config.
        lazy_init (bool): Whether to defer :meth:`full_init`.
            Defaults to False.

    Raises:
        FileNotFoundError: If the wrapped dataset's files are missing and
            cannot be downloaded (see :func:`build_wrapped`).
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 lazy_init: bool = False) -> None:
        if isinstance(dataset, dict):
            self.dataset = build_wrapped(dataset, type(self).__name__)
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

    def __getitem__(self, idx):
        """The sample at ``idx`` (see :meth:`_get_sample`), the wrapper
        initialised first if it is not yet."""
        if not self._fully_initialized:
            print_log(
                'Please call `full_init` method manually to accelerate '
                'the speed.',
                logger='current',
                level=logging.WARNING)
            self.full_init()
        return self._get_sample(idx)

    def _get_sample(self, idx):
        """The sample at ``idx`` of the initialised wrapper."""
        raise NotImplementedError

    def _read(self, idx: int, pipeline=None, shown=None):
        """Sample ``idx`` of the wrapped dataset, through ``pipeline`` when
        given: the one place where the wrappers read a sample.

        An error of the wrapped dataset's pipeline or of ``pipeline`` (e.g.
        mmcv's ``LoadImageFromFile`` on an empty file: OpenCV's ``!buf.
        empty()``, no file named) is raised again, of the same type where
        it can be, naming the sample's ``img_path`` and index, with the
        original message and the original error as its cause. An error that
        names the file already, or of a sample without ``img_path``, is
        raised unchanged.

        Args:
            idx (int): The index in the wrapped dataset.
            pipeline (callable, optional): Applied to the read sample.
            shown (int, optional): The index in this wrapper, for the
                message, when it is not ``idx``.
        """
        try:
            sample = self.dataset[idx]
            return sample if pipeline is None else pipeline(sample)
        except Exception as err:
            named = self._naming_error(err, idx, shown)
            if named is None:
                raise
            raise named from err

    def _naming_error(self, err: Exception, idx: int, shown=None):
        """``err`` made to name the file of sample ``idx``, or None."""
        try:
            path = self.dataset.get_data_info(idx).get('img_path', None)
        except Exception:  # no data info to name: the error as it is
            return None
        if not isinstance(path, str) or path in str(err):
            return None
        where = (f'sample {idx}' if shown is None or shown == idx else
                 f'sample {shown} (index {idx} of the wrapped '
                 f'{type(self.dataset).__name__})')
        message = (f'{type(self).__name__}: reading {where} failed, '
                   f'img_path={path!r}: {type(err).__name__}: '
                   f'{str(err).strip()}')
        try:
            named = type(err)(message)
        except Exception:  # an error type that takes other arguments
            return RuntimeError(message)
        return named if str(named) == message else RuntimeError(message)
