"""mmpretrain's CustomDataset: hidden entries of a folder skipped, list files
read strictly."""
import logging
import re

from mmengine.fileio import get_file_backend, get_text
from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.custom import find_folders, get_samples
from mmpretrain.registry import DATASETS

from .list_file import check_dense_labels, parse_list


def _hidden(path: str) -> bool:
    """Whether a relative path has a component starting with '.'."""
    return any(part.startswith('.') for part in re.split(r'[\\/]', path))


@DATASETS.register_module()
class ImageFolderDataset(CustomDataset):
    """:class:`CustomDataset` that skips hidden folders and files, and reads
    list files strictly.

    Read from a folder (no ``ann_file``), mmpretrain's ``CustomDataset``
    takes every sub-folder of the root as a class, in sorted order, so a
    hidden folder such as ``.ipynb_checkpoints`` (left by Jupyter) becomes
    class 0 and shifts every label by one. This dataset takes the same
    arguments and skips every folder or file whose name starts with ``'.'``
    (hidden on Unix): the classes are the other sub-folders of the root, in
    sorted order, and the images are the files with an allowed extension
    under them, outside hidden folders. Skipped top-level folders are named
    in a warning.

    With ``ann_file`` the list file decides, as in ``CustomDataset``: one
    ``<path> <label>`` line per image. Its lines are read by
    :func:`~mmlt_hybrid.datasets.list_file.parse_list`, which refuses a
    malformed line (blank between entries, one field, a label that is not a
    non-negative integer, a label beyond the classes of ``metainfo``) naming
    the file and the line, where ``CustomDataset`` fails with a bare ``not
    enough values to unpack``. A training set (not ``test_mode``) without
    class names must use every label from 0 to its largest
    (:func:`~mmlt_hybrid.datasets.list_file.check_dense_labels`): a label
    beyond the classes, such as 12 in a list of 10 classes, is refused
    naming its line instead of making classes 10 and 11 without images.

    Args:
        **kwargs: The arguments of :class:`CustomDataset`.

    Raises:
        ValueError: If ``metainfo`` gives classes and their number differs
            from the number of (visible) class folders; or if the list file
            has a malformed line or, for training, labels with a gap.
        RuntimeError: If no image is found (as ``CustomDataset``).
    """

    def load_data_list(self):
        """The samples of the list file (strictly read) or of the folder."""
        if not self.ann_file or not self.with_label:
            return super().load_data_list()
        classes = self.CLASSES
        entries = parse_list(
            get_text(self.ann_file).split('\n'), self.ann_file,
            None if classes is None else len(classes))
        if classes is None and not self.test_mode:
            check_dense_labels(entries, self.ann_file)
        backend = get_file_backend(self.img_prefix, enable_singleton=True)
        return [{
            'img_path': backend.join_path(self.img_prefix, entry.path),
            'gt_label': entry.label
        } for entry in entries]

    def is_valid_file(self, filename: str) -> bool:
        """Whether ``filename`` (relative to the folder listed) is an image
        of the dataset: an allowed extension, and no hidden component."""
        return super().is_valid_file(filename) and not _hidden(filename)

    def _find_samples(self):
        """Find the samples, hidden folders and files skipped."""
        if not self.with_label:
            return super()._find_samples()
        backend = get_file_backend(self.img_prefix, enable_singleton=True)
        folders, _ = find_folders(self.img_prefix, backend)
        classes = [f for f in folders if not f.startswith('.')]
        if len(classes) < len(folders):
            print_log(
                f'{type(self).__name__}: skipped the hidden folders '
                f'{[f for f in folders if f.startswith(".")]} of '
                f'{self.img_prefix!r}; the classes are its other '
                f'{len(classes)} folders.',
                logger='current',
                level=logging.WARNING)
        if self.CLASSES is not None and len(self.CLASSES) != len(classes):
            raise ValueError(
                f'{type(self).__name__}: metainfo gives {len(self.CLASSES)} '
                f'classes but {self.img_prefix!r} has {len(classes)} class '
                'folders (hidden ones skipped); check the data folder.')
        if self.CLASSES is None:
            self._metainfo['classes'] = tuple(classes)
        self.folder_to_idx = {name: i for i, name in enumerate(classes)}
        samples, empty = get_samples(self.img_prefix, self.folder_to_idx,
                                     self.is_valid_file, backend)
        if not samples:
            raise RuntimeError(
                f'{type(self).__name__}: found no image in the class '
                f'folders of {self.img_prefix!r}; allowed extensions: '
                f'{", ".join(self.extensions)}')
        if empty:
            print_log(
                f'{type(self).__name__}: no image in the folders '
                f'{sorted(empty)} of {self.img_prefix!r}.',
                logger='current',
                level=logging.WARNING)
        return samples


__all__ = ['ImageFolderDataset']
