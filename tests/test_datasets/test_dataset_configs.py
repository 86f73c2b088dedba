"""The data base configs load, and their training / test datasets, sampler,
collate function, preprocessor and evaluator build and run on generated
stand-in data.

The expected recipes are written out here, not read from the configs:

- CIFAR-LT (docs/method.md, "Augmentation"): random crop 32 with 4-pixel
  zero padding, horizontal flip p=0.5, grayscale p=0.2 (ITU-R 601 weights
  in RGB order, kept as 3 channels), for both views of the uniform image
  and for the balanced image. The shipped configs hold the decoded set in
  memory (no workers) and run the recipe on the whole batch in the data
  preprocessor (``BatchRandomCrop``, ``BatchRandomFlip``,
  ``BatchRandomGrayscale``, two views); ``cifar10lt_per_sample.py`` runs
  the same recipe as mmpretrain transforms in data workers.
- ImageNet-LT / iNaturalist: the workers take the random-resized crop to 224
  (two per uniform image, one per balanced image); the preprocessor flips,
  colour-jitters (p=0.8) and greys (p=0.2, BGR weights) the uniform views
  and only flips the balanced images.
"""
import copy
import functools
import math
import pickle
import uuid
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from cifar_augment import (
    CROP,
    FLIP_PROB,
    GRAY_PROB,
    GRAY_WEIGHTS_RGB,
    PAD,
    POSITIONS,
    denormalise,
    identify_cifar_draws,
)
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import FUNCTIONS
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.registry import DATA_SAMPLERS, DATASETS, METRICS, MODELS
from mmpretrain.structures import DataSample
from PIL import Image

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import (
    ClassBalancedPairSampler,
    HybridPairDataset,
    LongTailedDataset,
    long_tailed_counts,
)
from mmlt_hybrid.evaluation.metrics.long_tail_accuracy import LongTailAccuracy
from mmlt_hybrid.models.utils import HybridDataPreprocessor
from mmlt_hybrid.models.utils.batch_transforms import (
    BatchRandomCrop,
    BatchRandomFlip,
    BatchRandomGrayscale,
)

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / \
    'datasets'
IF_KEY = 'train_dataloader.dataset.dataset.imbalance_factor'

PACK = [dict(type='PackInputs')]
# ... on the device (the shipped CIFAR configs) ...
CIFAR_BATCH_TRANSFORMS = [
    dict(type='BatchRandomCrop', crop_size=CROP, padding=PAD),
    dict(type='BatchRandomFlip', prob=FLIP_PROB, direction='horizontal'),
    dict(
        type='BatchRandomGrayscale',
        prob=GRAY_PROB,
        keep_channels=True,
        channel_weights=GRAY_WEIGHTS_RGB),
]
# ... and per sample, in the workers (cifar10lt_per_sample.py).
CIFAR_SAMPLE_TRANSFORMS = [
    dict(type='RandomCrop', crop_size=CROP, padding=PAD),
    dict(type='RandomFlip', prob=FLIP_PROB, direction='horizontal'),
    dict(
        type='RandomGrayscale',
        prob=GRAY_PROB,
        keep_channels=True,
        channel_weights=GRAY_WEIGHTS_RGB),
]

# ImageNet-LT / iNaturalist: crops in the workers, the rest on the device.
RANDOM_RESIZED_CROP = dict(
    type='RandomResizedCrop', scale=224, backend='pillow')
LARGE_FEAT_PIPELINE = [
    dict(type='MultiView', num_views=2, transforms=[[RANDOM_RESIZED_CROP]]),
    dict(type='PackInputs'),
]
LARGE_CLS_PIPELINE = [RANDOM_RESIZED_CROP, dict(type='PackInputs')]
LARGE_BATCH_TRANSFORMS = [
    dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='BatchColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.,
        prob=0.8),
    dict(
        type='BatchRandomGrayscale',
        prob=0.2,
        keep_channels=True,
        # BGR order: the images are still BGR when the transforms run.
        channel_weights=(0.114, 0.587, 0.299)),
]
LARGE_BALANCED_TRANSFORMS = [
    dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
]


def plain(value):
    """A config value as plain Python (dicts and tuples) for comparing."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value


def rate_bound(p: float, n: int, z: float = 5.) -> float:
    """``z`` standard deviations of the mean of ``n`` Bernoulli(p)."""
    return z * math.sqrt(p * (1 - p) / n)


@pytest.fixture(autouse=True)
def training_step():
    """A fresh message hub, current for the test, holding a training step:
    the preprocessor's draws then come from its step generator (seeded by
    this step), not from whatever an earlier test left in torch's global
    generator or in an earlier runner's hub."""
    name = f'test_dataset_configs_{uuid.uuid4().hex}'
    hub = MessageHub.get_instance(name)
    hub.update_info('seed', 0)
    hub.update_info('epoch', 0)
    hub.update_info('iter', 0)
    yield hub
    MessageHub._instance_dict.pop(name, None)


def load(name: str, **overrides) -> Config:
    cfg = Config.fromfile(str(CONFIGS / f'{name}.py'))
    cfg.merge_from_dict(overrides)
    return cfg


def write_fake_cifar(root: Path,
                     cls,
                     per_class_train: int,
                     per_class_test: int,
                     seed: int = 0) -> dict:
    """Python-pickle batches in the layout mmpretrain's CIFAR class reads."""
    rng = np.random.default_rng(seed)
    num_classes = len(cls.METAINFO['classes'])
    label_key = 'labels' if cls is CIFAR10 else 'fine_labels'
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    arrays = {}
    for split, files, per_class in (('train', cls.train_list, per_class_train),
                                    ('test', cls.test_list, per_class_test)):
        labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        arrays[split] = (data, labels)
        for (name, _), part in zip(
                files, np.array_split(np.arange(len(labels)), len(files))):
            with open(folder / name, 'wb') as f:
                pickle.dump(
                    {
                        'data': data[part],
                        label_key: labels[part].tolist()
                    }, f)
    return arrays


def cifar_overrides(root, imbalance_factor) -> dict:
    return {
        'train_dataloader.dataset.dataset.dataset.data_root': str(root),
        'val_dataloader.dataset.data_root': str(root),
        'test_dataloader.dataset.data_root': str(root),
        IF_KEY: imbalance_factor,
    }


def raw_cifar(info: dict) -> torch.Tensor:
    """The image of a CIFAR data info (RGB HWC) as a CHW tensor."""
    return torch.from_numpy(np.ascontiguousarray(info['img'])).permute(2, 0, 1)


def raw_png(info: dict) -> torch.Tensor:
    """The image file of a data info, read as RGB, as a CHW tensor."""
    rgb = np.asarray(Image.open(info['img_path']).convert('RGB'))
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy())


def train_collate(cfg: Config):
    """The training collate function, as the Runner builds it."""
    spec = dict(
        cfg.train_dataloader.get('collate_fn', dict(type='pseudo_collate')))
    return functools.partial(FUNCTIONS.get(spec.pop('type')), **spec)


def gt(sample: DataSample) -> int:
    return int(sample.gt_label)


def check_train_side(cfg: Config,
                     num_classes: int,
                     expected_counts,
                     image_size: int,
                     data_views: int,
                     num_pairs: int = 4,
                     raw=None) -> SimpleNamespace:
    """Build the training dataset, sampler, collate function and
    preprocessor of a config and push ``num_pairs`` pairs through them.

    ``data_views``: the views of each uniform image in a dataset item (1 when
    the set is held in memory and viewed by the preprocessor). ``raw``: reads
    the raw image of a data info, to check that held images are unchanged.
    """
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert isinstance(dataset, HybridPairDataset)
    assert isinstance(dataset.dataset, LongTailedDataset)
    assert dataset.class_counts == expected_counts
    assert len(dataset.class_counts) == num_classes
    sampler = DATA_SAMPLERS.build(
        cfg.train_dataloader.sampler,
        default_args=dict(dataset=dataset, seed=0))
    assert isinstance(sampler, ClassBalancedPairSampler)
    triples = list(sampler)[:num_pairs]
    assert len(triples) == num_pairs
    labels = dataset.get_gt_labels()
    shape = (3, image_size, image_size)
    items = []
    for triple in triples:
        # The sampler yields (uniform index, balanced index, seed).
        assert len(triple) == 3 and all(isinstance(k, int) for k in triple)
        i, j, _ = triple
        item = dataset[triple]
        assert set(item) == {'inputs', 'data_samples'}
        assert set(item['inputs']) == {'views', 'balanced'}
        assert set(item['data_samples']) == {'uniform', 'balanced'}
        views, balanced = item['inputs']['views'], item['inputs']['balanced']
        assert isinstance(views, list) and len(views) == data_views
        for image in views + [balanced]:
            assert isinstance(image, torch.Tensor)
            assert image.shape == shape and image.dtype == torch.uint8
        uniform_sample = item['data_samples']['uniform']
        balanced_sample = item['data_samples']['balanced']
        assert isinstance(uniform_sample, DataSample)
        assert isinstance(balanced_sample, DataSample)
        assert gt(uniform_sample) == labels[i]
        assert gt(balanced_sample) == labels[j]
        if raw is not None:
            # Held in memory: the images exactly as read, not augmented.
            assert torch.equal(views[0], raw(dataset.get_data_info(i)))
            assert torch.equal(balanced, raw(dataset.get_data_info(j)))
        items.append(item)

    pre = MODELS.build(cfg.data_preprocessor)
    assert isinstance(pre, HybridDataPreprocessor)
    assert pre.num_classes == num_classes
    batch = train_collate(cfg)(copy.deepcopy(items))
    out = pre(batch, training=True)
    # The layout the model gets: V = 2 views of the N uniform images, the N
    # balanced images, their data samples apart.
    assert set(out) == {'inputs', 'data_samples'}
    assert set(out['inputs']) == {'views', 'balanced'}
    views = out['inputs']['views']
    assert isinstance(views, list) and len(views) == 2
    for tensor in views + [out['inputs']['balanced']]:
        assert tensor.shape == (num_pairs, ) + shape
        assert tensor.dtype == torch.float32
        assert torch.isfinite(tensor).all()
    samples = out['data_samples']
    assert set(samples) == {'uniform', 'balanced'}
    assert [gt(s)
            for s in samples['uniform']] == [labels[i] for i, _, _ in triples]
    assert [gt(s) for s in samples['balanced']
            ] == [labels[j] for _, j, _ in triples]
    return SimpleNamespace(
        dataset=dataset, triples=triples, items=items, pre=pre, out=out)


def check_cifar_draws(draws: torch.Tensor) -> None:
    """The draws of many rows spread as the paper's recipe draws them."""
    n = len(draws)
    flipped, grey, top, left = draws.T
    # Crop offsets: every one of the 9 positions along each side is hit.
    assert sorted(set(top.tolist())) == list(range(POSITIONS))
    assert sorted(set(left.tolist())) == list(range(POSITIONS))
    assert abs(flipped.double().mean() - FLIP_PROB) < rate_bound(FLIP_PROB, n)
    assert abs(grey.double().mean() - GRAY_PROB) < rate_bound(GRAY_PROB, n)


def check_cifar_augmentation(res: SimpleNamespace, raw) -> None:
    """The preprocessor's training batch is the paper's augmentation of the
    held images: for both views of the uniform images and for the balanced
    images, every row with its own draws."""
    dataset, pre, out = res.dataset, res.pre, res.out
    uniform_src = torch.stack(
        [raw(dataset.get_data_info(i)) for i, _, _ in res.triples])
    balanced_src = torch.stack(
        [raw(dataset.get_data_info(j)) for _, j, _ in res.triples])
    view_draws = [
        identify_cifar_draws(
            denormalise(pre, view, to_rgb=False), uniform_src)
        for view in out['inputs']['views']
    ]
    balanced_draws = identify_cifar_draws(
        denormalise(pre, out['inputs']['balanced'], to_rgb=False),
        balanced_src)
    check_cifar_draws(torch.cat(view_draws + [balanced_draws]))
    # The two views of an image are drawn independently (identical draws
    # have probability 1/81 * 1/2 * 0.68).
    same = (view_draws[0] == view_draws[1]).all(1)
    assert same.double().mean() < 0.1
    # The balanced images get the same augmentation, not none.
    flipped, grey, top, left = balanced_draws.T
    assert flipped.any() and grey.any()
    assert ((top != PAD) | (left != PAD)).double().mean() > 0.5


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
    assert cfg.val_evaluator.type == 'LongTailAccuracy'
    assert cfg.test_evaluator.type == 'LongTailAccuracy'
    pre = cfg.data_preprocessor
    assert pre.type == 'HybridDataPreprocessor'
    # Two views of every uniform image for the feature branch.
    assert pre.num_views == 2
    if name.startswith('cifar'):
        # The decoded set is held in memory and only packed: no workers;
        # the whole augmentation runs in the preprocessor, the same for
        # both branches.
        assert plain(train.dataset.pipeline) == plain(PACK)
        assert train.dataset.hold_in_memory is True
        assert train.dataset.get('balanced_pipeline') is None
        assert train.num_workers == 0
        assert train.persistent_workers is False
        assert plain(train.collate_fn) == {'type': 'default_collate'}
        assert train.batch_size == 512
        assert plain(pre.batch_transforms) == plain(CIFAR_BATCH_TRANSFORMS)
        assert pre.get('balanced_transforms') is None
        assert pre.to_rgb is False  # CIFAR images are RGB already
        # The IF is one key.
        assert train.dataset.dataset.imbalance_factor == 100
        changed = load(name, **{IF_KEY: 50})
        assert changed.train_dataloader.dataset.dataset.imbalance_factor == 50
        assert changed.train_dataloader.dataset.dataset.profile == 'exp'
    else:
        # Workers decode and crop (two crops of the uniform image, one of
        # the balanced image); flips, jitter and grey run on the device.
        assert plain(train.dataset.pipeline) == plain(LARGE_FEAT_PIPELINE)
        assert plain(
            train.dataset.balanced_pipeline) == plain(LARGE_CLS_PIPELINE)
        assert not train.dataset.get('hold_in_memory', False)
        assert train.num_workers > 0
        assert plain(pre.batch_transforms) == plain(LARGE_BATCH_TRANSFORMS)
        assert plain(
            pre.balanced_transforms) == plain(LARGE_BALANCED_TRANSFORMS)
        assert pre.to_rgb is True  # mmcv decodes BGR
        assert train.dataset.dataset.profile == 'none'


@pytest.mark.parametrize('name', ['cifar10lt', 'cifar100lt'])
def test_cifar_augmentation_is_the_papers(name):
    """The built preprocessor runs the paper's CIFAR augmentation on both
    branches."""
    pre = MODELS.build(load(name).data_preprocessor)
    assert pre.num_views == 2
    crop, flip, grey = pre.batch_transforms
    assert isinstance(crop, BatchRandomCrop)
    assert crop.crop_size == (CROP, CROP)
    assert crop.padding == (PAD, PAD, PAD, PAD)
    assert crop.pad_val == 0
    assert isinstance(flip, BatchRandomFlip)
    assert flip.prob == FLIP_PROB and flip.direction == 'horizontal'
    assert isinstance(grey, BatchRandomGrayscale)
    assert grey.prob == GRAY_PROB and grey.keep_channels
    # RGB images: ITU-R 601 weights in R, G, B order.
    assert grey.channel_weights == GRAY_WEIGHTS_RGB
    # The balanced images (and plain-CE batches) get the same transforms.
    assert pre.balanced_transforms is pre.batch_transforms


@pytest.mark.parametrize('cls,name,per_class,imbalance_factor', [
    (CIFAR10, 'cifar10lt', 100, 100),
    (CIFAR100, 'cifar100lt', 20, 10),
])
def test_cifar_configs_build_on_fake_batches(tmp_path, cls, name, per_class,
                                             imbalance_factor):
    arrays = write_fake_cifar(tmp_path, cls, per_class, 2)
    num_classes = len(cls.METAINFO['classes'])
    cfg = load(name, **cifar_overrides(tmp_path, imbalance_factor))
    assert cfg.train_dataloader.dataset.dataset.dataset.type == cls.__name__
    # The md5 sums of the real release cannot match generated batches.
    with mock.patch('mmpretrain.datasets.cifar.check_md5', return_value=True):
        res = check_train_side(
            cfg,
            num_classes,
            long_tailed_counts(per_class, num_classes, imbalance_factor),
            32,
            data_views=1,
            num_pairs=64,
            raw=raw_cifar)
        sample = check_test_side(cfg, 2 * num_classes, 32)
    assert res.dataset.hold_in_memory
    check_cifar_augmentation(res, raw_cifar)
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
    cfg = load(name, **cifar_overrides(root, imbalance_factor))
    base = load(
        name.replace('_folder', ''), **cifar_overrides(root, imbalance_factor))
    # Only the datasets differ from the non-folder config: loader,
    # sampler, held-in-memory wrapper, long-tailed cut and preprocessor
    # (with its augmentation) are the same.
    assert cfg.data_preprocessor == base.data_preprocessor
    train, base_train = (
        copy.deepcopy(c.train_dataloader.to_dict()) for c in (cfg, base))
    assert train['dataset']['dataset'].pop('dataset')['type'] == \
        'ImageFolderDataset'
    base_train['dataset']['dataset'].pop('dataset')
    assert train == base_train
    res = check_train_side(
        cfg,
        num_classes,
        long_tailed_counts(per_class, num_classes, imbalance_factor),
        32,
        data_views=1,
        num_pairs=64,
        raw=raw_png)
    check_cifar_augmentation(res, raw_png)
    sample = check_test_side(cfg, test_per_class * num_classes, 32)
    # The folder images are loaded as RGB, like mmpretrain's CIFAR classes.
    first = sorted((root / 'test' / 'class_000').iterdir())[0]
    rgb = np.asarray(Image.open(first).convert('RGB'))
    assert torch.equal(sample['inputs'],
                       torch.from_numpy(rgb.transpose(2, 0, 1).copy()))


def test_per_sample_variant_builds_with_the_per_sample_pipelines(tmp_path):
    """cifar10lt_per_sample.py: the paper's augmentation as mmpretrain
    transforms in data workers (two views of the uniform image, one of the
    balanced image, seeded by the sampler's seed), a preprocessor that only
    normalises."""
    cfg = load('cifar10lt_per_sample')
    train = cfg.train_dataloader
    assert train.sampler.type == 'ClassBalancedPairSampler'
    assert train.dataset.type == 'HybridPairDataset'
    assert train.dataset.hold_in_memory is False
    assert plain(train.dataset.pipeline) == plain([
        dict(
            type='MultiView',
            num_views=2,
            transforms=[CIFAR_SAMPLE_TRANSFORMS]),
        dict(type='PackInputs'),
    ])
    assert plain(
        train.dataset.balanced_pipeline) == plain(CIFAR_SAMPLE_TRANSFORMS +
                                                  PACK)
    assert train.num_workers > 0 and train.persistent_workers is True
    assert train.batch_size == 512
    pre = cfg.data_preprocessor
    assert pre.type == 'HybridDataPreprocessor'
    assert pre.num_views is None and list(pre.batch_transforms) == []
    # Everything else is cifar10lt.py's.
    base = load('cifar10lt')
    assert train.dataset.dataset == base.train_dataloader.dataset.dataset
    assert train.sampler == base.train_dataloader.sampler
    for key in ('mean', 'std', 'to_rgb', 'num_classes'):
        assert pre[key] == base.data_preprocessor[key]
    assert cfg.val_dataloader == base.val_dataloader

    write_fake_cifar(tmp_path, CIFAR10, 100, 2)
    cfg.merge_from_dict(cifar_overrides(tmp_path, 100))
    with mock.patch('mmpretrain.datasets.cifar.check_md5', return_value=True):
        res = check_train_side(
            cfg,
            10,
            long_tailed_counts(100, 10, 100),
            32,
            data_views=2,
            num_pairs=64)
    dataset = res.dataset
    assert not dataset.hold_in_memory
    # The workers' views are the paper's augmentation of the raw images.
    uniform_src = torch.stack(
        [raw_cifar(dataset.get_data_info(i)) for i, _, _ in res.triples])
    balanced_src = torch.stack(
        [raw_cifar(dataset.get_data_info(j)) for _, j, _ in res.triples])
    views = [
        torch.stack([item['inputs']['views'][v] for item in res.items])
        for v in range(2)
    ]
    balanced = torch.stack([item['inputs']['balanced'] for item in res.items])
    view_draws = [identify_cifar_draws(v, uniform_src) for v in views]
    balanced_draws = identify_cifar_draws(balanced, balanced_src)
    check_cifar_draws(torch.cat(view_draws + [balanced_draws]))
    assert (view_draws[0] == view_draws[1]).all(1).double().mean() < 0.1

    # The pair's seed fixes its augmentation; another seed changes it.
    def images(item):
        return item['inputs']['views'] + [item['inputs']['balanced']]

    for (i, j, seed), item in list(zip(res.triples, res.items))[:8]:
        for again, before in zip(images(dataset[(i, j, seed)]), images(item)):
            assert torch.equal(again, before)
    changed = [
        not torch.equal(dataset[(i, j, seed + 1)]['inputs']['views'][0],
                        item['inputs']['views'][0])
        for (i, j, seed), item in list(zip(res.triples, res.items))[:8]
    ]
    assert sum(changed) >= 6
    # The preprocessor adds no augmentation: it only normalises.
    out = res.out['inputs']
    for view, data in zip(out['views'], views):
        assert torch.equal(denormalise(res.pre, view, to_rgb=False), data)
    assert torch.equal(
        denormalise(res.pre, out['balanced'], to_rgb=False), balanced)


def test_per_sample_and_device_augmentations_are_one_recipe():
    """The per-sample transforms of cifar10lt_per_sample.py and the batch
    transforms of cifar10lt.py have the same settings, both the paper's."""
    device = load('cifar10lt').data_preprocessor
    per_sample = load('cifar10lt_per_sample').train_dataloader.dataset
    b_crop, b_flip, b_grey = device.batch_transforms
    assert device.get('balanced_transforms') is None  # both branches alike
    multiview, pack = per_sample.pipeline
    assert (multiview.type, pack.type) == ('MultiView', 'PackInputs')
    assert multiview.num_views == device.num_views == 2
    assert len(multiview.transforms) == 1  # one recipe for every view
    for recipe in (multiview.transforms[0], per_sample.balanced_pipeline[:-1]):
        s_crop, s_flip, s_grey = recipe
        assert (s_crop.type, b_crop.type) == ('RandomCrop', 'BatchRandomCrop')
        assert s_crop.crop_size == b_crop.crop_size == CROP
        assert s_crop.padding == b_crop.padding == PAD
        assert s_crop.get('pad_val', 0) == b_crop.get('pad_val', 0) == 0
        assert (s_flip.type, b_flip.type) == ('RandomFlip', 'BatchRandomFlip')
        assert s_flip.prob == b_flip.prob == FLIP_PROB
        assert s_flip.direction == b_flip.direction == 'horizontal'
        assert (s_grey.type, b_grey.type) == ('RandomGrayscale',
                                              'BatchRandomGrayscale')
        assert s_grey.prob == b_grey.prob == GRAY_PROB
        assert s_grey.keep_channels is b_grey.keep_channels is True
        assert tuple(s_grey.channel_weights) == tuple(
            b_grey.channel_weights) == GRAY_WEIGHTS_RGB
    assert per_sample.balanced_pipeline[-1].type == 'PackInputs'


def write_list_dataset(root: Path, train_counts, test_per_class: int):
    """A few small JPEGs and list files ``<path> <label>`` pointing at them
    (paths repeat: only the lists need one line per image)."""
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        path = root / 'images' / f'img{k}.jpg'
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 52, 3),
                                     dtype=np.uint8)).save(path)
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


def check_large_augmentation(res: SimpleNamespace) -> None:
    """Workers: two independent crops per uniform image. Preprocessor: the
    balanced images are only flipped (or not); the uniform views are also
    colour-jittered (p=0.8) and greyed (p=0.2)."""
    items = res.items
    for item in items:
        first, second = item['inputs']['views']
        assert not torch.equal(first, second)
    uniform_in = torch.cat([
        torch.stack([item['inputs']['views'][v] for item in items])
        for v in range(2)
    ])
    balanced_in = torch.stack([item['inputs']['balanced'] for item in items])
    # The preprocessor flips BGR to RGB before normalising.
    uniform = denormalise(
        res.pre, torch.cat(res.out['inputs']['views']), to_rgb=True)
    balanced = denormalise(res.pre, res.out['inputs']['balanced'], to_rgb=True)

    def as_is(out, src):
        return (out == src).flatten(1).all(1)

    def mirrored(out, src):
        return (out == src.flip(-1)).flatten(1).all(1)

    def grey(out):
        return ((out[:, 0] == out[:, 1]) &
                (out[:, 1] == out[:, 2])).flatten(1).all(1)

    kept, flipped = as_is(balanced,
                          balanced_in), mirrored(balanced, balanced_in)
    assert (kept | flipped).all()
    assert kept.any() and flipped.any()
    assert not grey(balanced_in).any()  # the stand-in images are colour
    changed = ~(as_is(uniform, uniform_in) | mirrored(uniform, uniform_in))
    # Jittered or greyed with probability 1 - 0.2 * 0.8 = 0.84.
    assert changed.double().mean() > 0.5
    greyed = grey(uniform)
    assert greyed.any() and not greyed.all()


@pytest.mark.parametrize('name,num_classes,train_list,test_list', [
    ('imagenetlt', 1000, 'ImageNet_LT_train.txt', 'ImageNet_LT_test.txt'),
    ('inat2018', 8142, 'iNaturalist18_train.txt', 'iNaturalist18_val.txt'),
])
def test_list_file_configs_build(tmp_path, name, num_classes, train_list,
                                 test_list):
    cfg = load(name)
    train_inner = cfg.train_dataloader.dataset.dataset.dataset
    assert train_inner.ann_file == f'meta/{train_list}'
    assert plain(train_inner.pipeline) == plain(
        [dict(type='CheckedLoadImageFromFile')])
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
        'train_dataloader.dataset.dataset.dataset.data_root':
        str(tmp_path),
        'val_dataloader.dataset.data_root':
        str(tmp_path),
        'test_dataloader.dataset.data_root':
        str(tmp_path),
    })
    res = check_train_side(
        cfg, num_classes, counts, 224, data_views=2, num_pairs=16)
    assert not res.dataset.hold_in_memory
    check_large_augmentation(res)
    check_test_side(cfg, num_classes, 224)
