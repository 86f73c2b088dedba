"""The data base configs load, and their training / test datasets, sampler,
preprocessor and evaluator build and run on generated stand-in data."""
import pickle
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from PIL import Image

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import (ClassBalancedPairSampler, HybridPairDataset,
                                  LongTailedDataset, long_tailed_counts)
from mmlt_hybrid.evaluation.metrics.long_tail_accuracy import LongTailAccuracy
from mmlt_hybrid.models.utils import HybridDataPreprocessor
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.registry import DATA_SAMPLERS, DATASETS, METRICS, MODELS

CONFIGS = Path(__file__).resolve().parents[1] / 'configs' / '_base_' / \
    'datasets'
IF_KEY = 'train_dataloader.dataset.dataset.imbalance_factor'


def load(name: str, **overrides) -> Config:
    cfg = Config.fromfile(str(CONFIGS / f'{name}.py'))
    cfg.merge_from_dict(overrides)
    return cfg


def write_fake_cifar(root: Path, cls, per_class_train: int,
                     per_class_test: int, seed: int = 0) -> dict:
    """Python-pickle batches in the layout mmpretrain's CIFAR class reads."""
    rng = np.random.default_rng(seed)
    num_classes = len(cls.METAINFO['classes'])
    label_key = 'labels' if cls is CIFAR10 else 'fine_labels'
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    arrays = {}
    for split, files, per_class in (('train', cls.train_list,
                                     per_class_train),
                                    ('test', cls.test_list, per_class_test)):
        labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        arrays[split] = (data, labels)
        for (name, _), part in zip(
                files, np.array_split(np.arange(len(labels)), len(files))):
            with open(folder / name, 'wb') as f:
                pickle.dump({
                    'data': data[part],
                    label_key: labels[part].tolist()
                }, f)
    return arrays


def check_train_side(cfg: Config, num_classes: int, expected_counts,
                     image_size: int) -> None:
    """Build the training dataset, sampler and preprocessor of a config and
    push one batch of 4 pairs through them."""
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert isinstance(dataset, HybridPairDataset)
    assert isinstance(dataset.dataset, LongTailedDataset)
    assert dataset.class_counts == expected_counts
    assert len(dataset.class_counts) == num_classes
    sampler = DATA_SAMPLERS.build(
        cfg.train_dataloader.sampler,
        default_args=dict(dataset=dataset, seed=0))
    assert isinstance(sampler, ClassBalancedPairSampler)
    pairs = list(sampler)[:4]
    samples = [dataset[p] for p in pairs]
    labels = dataset.get_gt_labels()
    for (i, j), sample in zip(pairs, samples):
        assert len(sample['inputs']) == 3  # two views + balanced
        for view in sample['inputs']:
            assert view.shape == (3, image_size, image_size)
            assert view.dtype == torch.uint8
        assert int(sample['data_samples'][0].gt_label) == labels[i]
        assert int(sample['data_samples'][1].gt_label) == labels[j]
    pre = MODELS.build(cfg.data_preprocessor)
    assert isinstance(pre, HybridDataPreprocessor)
    assert pre.num_classes == num_classes
    out = pre(pseudo_collate(samples), training=True)
    assert out['inputs'].shape == (12, 3, image_size, image_size)
    assert len(out['data_samples']) == 8
    assert torch.isfinite(out['inputs']).all()


def check_test_side(cfg: Config, num_images: int, image_size: int):
    """Build the val/test datasets and evaluators; return val sample 0."""
    for split in ('val', 'test'):
        dataset = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
        assert len(dataset) == num_images
        sample = dataset[0]
        assert sample['inputs'].shape == (3, image_size, image_size)
        metric = METRICS.build(cfg[f'{split}_evaluator'])
        assert isinstance(metric, LongTailAccuracy)
        assert metric.class_counts is None  # filled by ClassCountsHook
    assert cfg.val_dataloader.sampler.type == 'DefaultSampler'
    return DATASETS.build(cfg.val_dataloader.dataset)[0]


@pytest.mark.parametrize('name', [
    'cifar10lt', 'cifar100lt', 'cifar10lt_folder', 'cifar100lt_folder',
    'imagenetlt', 'inat2018'
])
def test_config_loads_with_the_shared_layout(name):
    cfg = load(name)
    train = cfg.train_dataloader
    assert train.sampler.type == 'ClassBalancedPairSampler'
    assert train.dataset.type == 'HybridPairDataset'
    assert train.dataset.dataset.type == 'LongTailedDataset'
    assert cfg.data_preprocessor.type == 'HybridDataPreprocessor'
    assert cfg.val_evaluator.type == 'LongTailAccuracy'
    assert cfg.test_evaluator.type == 'LongTailAccuracy'
    assert train.dataset.pipeline == cfg.feat_pipeline
    assert train.dataset.balanced_pipeline == cfg.cls_pipeline
    assert cfg.feat_pipeline[0].type == 'MultiView'
    assert cfg.feat_pipeline[0].num_views == 2
    # The IF is one key.
    if name.startswith('cifar'):
        assert cfg.train_dataloader.dataset.dataset.imbalance_factor == 100
        changed = load(name, **{IF_KEY: 50})
        assert changed.train_dataloader.dataset.dataset.imbalance_factor == 50
        assert changed.train_dataloader.dataset.dataset.profile == 'exp'
    else:
        assert train.dataset.dataset.profile == 'none'


@pytest.mark.parametrize('name', ['cifar10lt', 'cifar100lt'])
def test_cifar_augmentation_is_the_papers(name):
    cfg = load(name)
    view = cfg.feat_pipeline[0].transforms[0]
    for pipeline in (view, cfg.cls_pipeline[:-1]):
        assert [t.type for t in pipeline] == [
            'RandomCrop', 'RandomFlip', 'RandomGrayscale'
        ]
        crop, flip, gray = pipeline
        assert crop.crop_size == 32 and crop.padding == 4
        assert flip.prob == 0.5 and flip.direction == 'horizontal'
        assert gray.prob == 0.2 and gray.keep_channels
        # RGB images: ITU-R 601 weights in R, G, B order.
        assert tuple(gray.channel_weights) == (0.299, 0.587, 0.114)
    assert cfg.cls_pipeline[-1].type == 'PackInputs'
    assert cfg.data_preprocessor.to_rgb is False


@pytest.mark.parametrize('cls,name,per_class,imbalance_factor', [
    (CIFAR10, 'cifar10lt', 100, 100),
    (CIFAR100, 'cifar100lt', 20, 10),
])
def test_cifar_configs_build_on_fake_batches(tmp_path, cls, name, per_class,
                                             imbalance_factor):
    arrays = write_fake_cifar(tmp_path, cls, per_class, 2)
    num_classes = len(cls.METAINFO['classes'])
    cfg = load(
        name, **{
            'train_dataloader.dataset.dataset.dataset.data_root':
            str(tmp_path),
            'val_dataloader.dataset.data_root': str(tmp_path),
            'test_dataloader.dataset.data_root': str(tmp_path),
            IF_KEY: imbalance_factor,
        })
    assert cfg.train_dataloader.dataset.dataset.dataset.type == cls.__name__
    # The md5 sums of the real release cannot match generated batches.
    with mock.patch('mmpretrain.datasets.cifar.check_md5',
                    return_value=True):
        check_train_side(
            cfg, num_classes,
            long_tailed_counts(per_class, num_classes, imbalance_factor), 32)
        sample = check_test_side(cfg, 2 * num_classes, 32)
    # CIFAR gives RGB HWC images; packed CHW they are the raw batch rows.
    data, labels = arrays['test']
    assert torch.equal(sample['inputs'],
                       torch.from_numpy(data[0].reshape(3, 32, 32)))
    assert int(sample['data_samples'].gt_label) == labels[0]


@pytest.mark.parametrize('name,fixture,imbalance_factor,num_classes', [
    ('cifar10lt_folder', 'tiny_folder', 4, 10),
    ('cifar100lt_folder', 'tiny_folder_100', 3, 100),
])
def test_folder_configs_build_on_generated_folders(request, name, fixture,
                                                   imbalance_factor,
                                                   num_classes):
    root = request.getfixturevalue(fixture)
    per_class = len(list((root / 'train' / 'class_000').iterdir()))
    test_per_class = len(list((root / 'test' / 'class_000').iterdir()))
    cfg = load(
        name, **{
            'train_dataloader.dataset.dataset.dataset.data_root': str(root),
            'val_dataloader.dataset.data_root': str(root),
            'test_dataloader.dataset.data_root': str(root),
            IF_KEY: imbalance_factor,
        })
    base = load(name.replace('_folder', ''))
    # Only the datasets differ from the non-folder config.
    assert cfg.feat_pipeline == base.feat_pipeline
    assert cfg.cls_pipeline == base.cls_pipeline
    assert cfg.data_preprocessor == base.data_preprocessor
    check_train_side(
        cfg, num_classes,
        long_tailed_counts(per_class, num_classes, imbalance_factor), 32)
    sample = check_test_side(cfg, test_per_class * num_classes, 32)
    # The folder images are loaded as RGB, like mmpretrain's CIFAR classes.
    first = sorted((root / 'test' / 'class_000').iterdir())[0]
    rgb = np.asarray(Image.open(first).convert('RGB'))
    assert torch.equal(sample['inputs'],
                       torch.from_numpy(rgb.transpose(2, 0, 1).copy()))


def write_list_dataset(root: Path, train_counts, test_per_class: int):
    """A few small JPEGs and list files ``<path> <label>`` pointing at them
    (paths repeat: only the lists need one line per image)."""
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        path = root / 'images' / f'img{k}.jpg'
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(
            rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(path)
        paths.append(f'images/img{k}.jpg')
    lines = {'train': [], 'test': []}
    for label, count in enumerate(train_counts):
        lines['train'] += [
            f'{paths[(label + n) % 3]} {label}' for n in range(count)
        ]
        lines['test'] += [
            f'{paths[n % 3]} {label}' for n in range(test_per_class)
        ]
    return lines


@pytest.mark.parametrize('name,num_classes,train_list,test_list', [
    ('imagenetlt', 1000, 'ImageNet_LT_train.txt', 'ImageNet_LT_test.txt'),
    ('inat2018', 8142, 'iNaturalist18_train.txt', 'iNaturalist18_val.txt'),
])
def test_list_file_configs_build(tmp_path, name, num_classes, train_list,
                                 test_list):
    cfg = load(name)
    train_inner = cfg.train_dataloader.dataset.dataset.dataset
    assert train_inner.ann_file == f'meta/{train_list}'
    assert cfg.val_dataloader.dataset.ann_file == f'meta/{test_list}'
    assert cfg.data_preprocessor.num_classes == num_classes
    assert cfg.data_preprocessor.to_rgb is True  # mmcv decodes BGR

    # Long-tailed stand-in lists with every class present: 1 + (c < 3) * 4.
    counts = [5 if c < 3 else 1 for c in range(num_classes)]
    lines = write_list_dataset(tmp_path, counts, test_per_class=1)
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / train_list).write_text('\n'.join(lines['train']))
    (tmp_path / 'meta' / test_list).write_text('\n'.join(lines['test']))
    cfg.merge_from_dict({
        'train_dataloader.dataset.dataset.dataset.data_root': str(tmp_path),
        'val_dataloader.dataset.data_root': str(tmp_path),
        'test_dataloader.dataset.data_root': str(tmp_path),
    })
    check_train_side(cfg, num_classes, counts, 224)
    check_test_side(cfg, num_classes, 224)
