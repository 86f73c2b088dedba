"""Damaged or missing data is refused with an error that names it.

- An empty or undecodable image file: the error names the file and says
  which (folder configs: the test set, the training set held in memory and
  read per sample; the ImageNet-LT loaders).
- An image of another size than the rest of its batch: refused by the data
  preprocessor, naming the sizes and the file, unless
  ``pad_to_same_size=True`` (then padded as mmpretrain pads).
- A hidden folder (``.ipynb_checkpoints``) in an image-folder root is not a
  class, and hidden files are not images.
- CIFAR configs with no data at ``data_root`` and no internet: the error
  says where the data was looked for and how to provide it, and no folder
  is left behind.
"""
import copy
import pickle
import re
import shutil
import urllib.error
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from conftest import NoReadBack
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS
from PIL import Image

import mmlt_hybrid  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
DATA_CONFIGS = REPO / 'configs' / '_base_' / 'datasets'
CIFAR_KEYS = ('train_dataloader.dataset.dataset.dataset.data_root',
              'val_dataloader.dataset.data_root',
              'test_dataloader.dataset.data_root')


def load(name: str, root=None, **overrides) -> Config:
    cfg = Config.fromfile(str(DATA_CONFIGS / f'{name}.py'))
    if root is not None:
        overrides.update({key: str(root) for key in CIFAR_KEYS})
    cfg.merge_from_dict(overrides)
    return cfg


def build(cfg: dict):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return DATASETS.build(copy.deepcopy(cfg))


@pytest.fixture
def folder(tiny_folder, tmp_path) -> Path:
    """A private copy of the tiny CIFAR-10-shaped folder, to damage."""
    return Path(shutil.copytree(tiny_folder, tmp_path / 'data'))


def first_image(root: Path, split: str, label: int = 3) -> Path:
    return sorted((root / split / f'class_{label:03d}').glob('*.png'))[0]


# ---------------------------------------------------------------- files --


@pytest.mark.parametrize('damage,problem', [
    (b'', 'is empty'),
    (b'not an image at all', 'cannot be decoded'),
])
def test_damaged_image_of_the_test_set_is_named(folder, damage, problem):
    bad = first_image(folder, 'test')
    bad.write_bytes(damage)
    test_set = build(load('cifar10lt_folder', folder).test_dataloader.dataset)
    index = [
        Path(test_set.get_data_info(i)['img_path'])
        for i in range(len(test_set))
    ].index(bad)
    with pytest.raises(OSError, match=f'{re.escape(str(bad))}.*{problem}'):
        test_set[index]


@pytest.mark.parametrize('hold_in_memory', [True, False])
def test_empty_image_of_the_training_set_is_named(folder, hold_in_memory):
    """Held in memory, the whole set is decoded when it is built; per
    sample, when the pair holding the file is read."""
    bad = first_image(folder, 'train')
    bad.write_bytes(b'')
    cfg = load(
        'cifar10lt_folder', folder, **{
            'train_dataloader.dataset.dataset.imbalance_factor': 1,
            'train_dataloader.dataset.hold_in_memory': hold_in_memory,
        })
    match = f'{re.escape(str(bad))}.*is empty'
    if hold_in_memory:
        with pytest.raises(OSError, match=match):
            build(cfg.train_dataloader.dataset)
        return
    train = build(cfg.train_dataloader.dataset)
    index = [
        Path(train.get_data_info(i)['img_path']) for i in range(len(train))
    ].index(bad)
    with pytest.raises(OSError, match=match):
        train[(0, index, 123)]


def test_imagenet_loaders_name_an_empty_file(tmp_path):
    bad = tmp_path / 'n01440764_1.JPEG'
    bad.write_bytes(b'')
    cfg = load('imagenetlt')
    for loader in (cfg.test_pipeline[0],
                   cfg.train_dataloader.dataset.dataset.dataset.pipeline[0]):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            transform = TRANSFORMS.build(loader)
        with pytest.raises(OSError, match=f'{re.escape(str(bad))}.*is empty'):
            transform(dict(img_path=str(bad)))


def test_missing_image_keeps_file_not_found(tmp_path):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        transform = TRANSFORMS.build(dict(type='CheckedLoadImageFromFile'))
    with pytest.raises(FileNotFoundError, match='gone.png'):
        transform(dict(img_path=str(tmp_path / 'gone.png')))


# ---------------------------------------------------------------- sizes --


def odd_size_test_set(folder: Path) -> Path:
    """Replace one 32x32 test image by a 64x64 one; return its path."""
    bad = first_image(folder, 'test', label=0)
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(bad)
    return bad


def test_image_of_another_size_in_a_test_batch_is_refused(folder):
    """The test batch of the folder config, as the Runner makes it
    (pseudo_collate), through the config's preprocessor: refused, naming
    both sizes and the file, from shapes alone (nothing read back)."""
    bad = odd_size_test_set(folder)
    cfg = load('cifar10lt_folder', folder)
    test_set = build(cfg.test_dataloader.dataset)
    batch = pseudo_collate([test_set[i] for i in range(8)])
    pre = MODELS.build(cfg.data_preprocessor)
    with NoReadBack(), pytest.raises(
            ValueError,
            match=rf'one size.*7 of \(3, 32, 32\).*\(3, 64, 64\) '
            rf'\({re.escape(str(bad))}\)'
            r'.*pad_to_same_size'):
        pre(batch, training=False)


def test_image_of_another_size_in_the_held_training_set_is_named(folder):
    bad = sorted((folder / 'train' / 'class_004').glob('*.png'))[5]
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(bad)
    cfg = load('cifar10lt_folder', folder,
               **{'train_dataloader.dataset.dataset.imbalance_factor': 1})
    with pytest.raises(
            ValueError,
            match=r'shape \(3, 64, 64\) for index '
            rf'\d+ \({re.escape(str(bad))}\) after .*'
            r'\(3, 32, 32\)'):
        build(cfg.train_dataloader.dataset)


def test_pad_to_same_size_pads_as_mmpretrain_does(folder):
    """With the option the batch is padded at the bottom right with
    pad_value, after normalisation; the other images are unchanged."""
    odd_size_test_set(folder)
    cfg = load('cifar10lt_folder', folder)
    test_set = build(cfg.test_dataloader.dataset)
    items = [test_set[i] for i in range(8)]
    pre = MODELS.build(
        dict(cfg.data_preprocessor, pad_to_same_size=True, pad_value=-3.0))
    out = pre(pseudo_collate(items), training=False)['inputs']
    assert out.shape == (8, 3, 64, 64)
    mean = torch.tensor(cfg.data_preprocessor.mean).view(3, 1, 1)
    std = torch.tensor(cfg.data_preprocessor.std).view(3, 1, 1)
    for row, item in zip(out, items):
        h, w = item['inputs'].shape[1:]
        expected = torch.full((3, 64, 64), -3.0)
        expected[:, :h, :w] = (item['inputs'].float() - mean) / std
        torch.testing.assert_close(row, expected)


def test_size_check_reads_nothing_back(folder):
    """The check of a same-size test batch looks at shapes only (mmengine's
    own stacking, which reads values back, is stubbed out here)."""
    cfg = load('cifar10lt_folder', folder)
    test_set = build(cfg.test_dataloader.dataset)
    batch = pseudo_collate([test_set[i] for i in range(4)])
    pre = MODELS.build(cfg.data_preprocessor)
    with mock.patch.object(ClsDataPreprocessor, 'forward',
                           lambda self, data, training=False: data), \
            NoReadBack():
        out = pre(batch, training=False)
    assert out['inputs'] is batch['inputs']


# ------------------------------------------------------- hidden folders --


def test_hidden_folders_and_files_are_skipped(folder):
    """A Jupyter checkpoint folder in the roots and in a class folder, and a
    hidden file: the classes and labels stay those of the class folders."""
    for split in ('train', 'test'):
        hidden = folder / split / '.ipynb_checkpoints'
        hidden.mkdir()
        shutil.copy(first_image(folder, split), hidden / 'x-checkpoint.png')
        inner = folder / split / 'class_002' / '.ipynb_checkpoints'
        inner.mkdir()
        shutil.copy(first_image(folder, split), inner / 'y-checkpoint.png')
        shutil.copy(
            first_image(folder, split),
            folder / split / 'class_005' / '._00000.png')
    cfg = load('cifar10lt_folder', folder,
               **{'train_dataloader.dataset.dataset.imbalance_factor': 1})
    names = [f'class_{c:03d}' for c in range(10)]
    for dataset, split in (
        (build(cfg.train_dataloader.dataset.dataset.dataset), 'train'),
        (build(cfg.test_dataloader.dataset), 'test'),
    ):
        assert list(dataset.metainfo['classes']) == names
        expected = sorted((str(p), names.index(p.parent.name))
                          for p in (folder / split).glob('class_*/*.png')
                          if not p.name.startswith('.'))
        got = sorted((info['img_path'], info['gt_label'])
                     for info in (dataset.get_data_info(i)
                                  for i in range(len(dataset))))
        assert got == expected
    # The long-tailed training set keeps every class.
    train = build(cfg.train_dataloader.dataset)
    assert train.class_counts == [24] * 10


def test_class_names_given_that_do_not_match_the_folders(folder):
    (folder / 'test' / '.ipynb_checkpoints').mkdir()
    cfg = load('cifar10lt_folder', folder)
    dataset = dict(
        cfg.test_dataloader.dataset,
        metainfo=dict(classes=[f'c{i}' for i in range(11)]))
    with pytest.raises(ValueError, match='11 classes.*has 10 class folders'):
        build(dataset)


# --------------------------------------------------------- missing data --


@pytest.fixture
def offline():
    """No network: every download attempt fails at once."""
    with mock.patch(
            'urllib.request.urlopen',
            side_effect=urllib.error.URLError('no network')) as m:
        yield m


@pytest.mark.parametrize('name,cls', [('cifar10lt', CIFAR10),
                                      ('cifar100lt', CIFAR100)])
def test_missing_cifar_training_data_says_where_and_leaves_nothing(
        tmp_path, offline, name, cls):
    root = tmp_path / 'absent' / 'cifar'
    cfg = load(name, root)
    with pytest.raises(FileNotFoundError) as info:
        build(cfg.train_dataloader.dataset)
    message = str(info.value)
    for part in (f'no {cls.__name__} data', str(root), cls.base_folder,
                 'URLError', 'internet', cls.url,
                 'train_dataloader.dataset.dataset.dataset.data_root',
                 'cifar10lt_folder.py', str(tmp_path / 'absent')):
        assert part in message
    assert offline.called
    assert not (tmp_path / 'absent').exists()


def test_missing_cifar_data_in_an_existing_folder_keeps_it(tmp_path, offline):
    root = tmp_path / 'cifar10'
    root.mkdir()
    (root / 'notes.txt').write_text('mine')
    cfg = load('cifar10lt', root)
    with pytest.raises(
            FileNotFoundError,
            match=f'no CIFAR10 data at.*{re.escape(str(root))}'):
        build(cfg.train_dataloader.dataset)
    assert sorted(p.name for p in root.iterdir()) == ['notes.txt']


@pytest.mark.parametrize('name', ['cifar10lt', 'cifar100lt'])
def test_missing_cifar_test_data_is_not_downloaded(tmp_path, offline, name):
    """tools/test.py builds only the test set: it names the folder and
    makes none."""
    root = tmp_path / 'absent' / 'cifar'
    cfg = load(name, root)
    for split in ('val_dataloader', 'test_dataloader'):
        with pytest.raises(
                RuntimeError,
                match=f'Cannot find .* in {re.escape(str(root))}'):
            build(cfg[split].dataset)
    assert not offline.called
    assert not (tmp_path / 'absent').exists()


def write_cifar10(root: Path, per_file: int = 10) -> None:
    """Pickled batches in mmpretrain's CIFAR-10 layout (labels 0..9)."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, _ in CIFAR10.train_list + CIFAR10.test_list:
        with open(folder / name, 'wb') as f:
            pickle.dump(
                dict(
                    data=np.zeros((per_file, 3072), np.uint8),
                    labels=[k % 10 for k in range(per_file)]), f)


def test_a_download_that_succeeds_still_builds(tmp_path):
    """With internet (a stand-in download that writes the batches), the
    training set downloads into a new data_root and builds."""
    root = tmp_path / 'new' / 'cifar10'

    def download(url, download_root, **kwargs):
        write_cifar10(Path(download_root))

    cfg = load('cifar10lt', root,
               **{'train_dataloader.dataset.dataset.imbalance_factor': 1})
    with mock.patch('mmpretrain.datasets.cifar.download_and_extract_archive',
                    side_effect=download) as fetch, \
            mock.patch('mmpretrain.datasets.cifar.check_md5',
                       side_effect=lambda path, md5: Path(path).exists()):
        train = build(cfg.train_dataloader.dataset)
    assert fetch.call_count == 1
    assert train.class_counts == [5] * 10
