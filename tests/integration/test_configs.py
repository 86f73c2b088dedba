"""Every config in configs/ builds, and every CIFAR one trains an iteration.

The CIFAR configs read mmpretrain's CIFAR10/CIFAR100 (which download) or an
image-folder copy; ImageNet-LT and iNaturalist read list files. Here each is
pointed at generated stand-in data of the same shape: SyntheticImageDataset
(32x32 RGB, 10 or 100 classes) for the CIFAR classes, generated image folders
for CustomDataset over folders, and a generated list file for ann_file
datasets.
"""
import copy
import functools
import uuid
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from conftest import REPO_ROOT, make_image_folder
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub
from mmengine.registry import FUNCTIONS, DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import DATA_SAMPLERS, DATASETS, MODELS
from mmpretrain.structures import DataSample
from tool_runner import load_tool

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import ClassBalancedPairSampler, HybridPairDataset
from mmlt_hybrid.models.utils import HybridDataPreprocessor

CONFIG_DIR = REPO_ROOT / 'configs'
ALL_CONFIGS = sorted(
    str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob('*.py')
    if '_base_' not in p.parts
    # image folders at placeholder paths: trained end to end on generated
    # folders, with the guide's commands, by test_custom_dataset_configs.py
    and '_custom_' not in p.name)
CIFAR_CONFIGS = [c for c in ALL_CONFIGS if 'cifar' in c or 'quickstart' in c]
LARGE_SCALE = [c for c in ALL_CONFIGS if c not in CIFAR_CONFIGS]
# The shipped CIFAR-LT configs hold the decoded training set in memory and
# augment on the device; the example keeps mmpretrain's per-sample pipeline.
IN_MEMORY = [c for c in CIFAR_CONFIGS if not c.startswith('examples/')]


def test_config_lists_are_complete():
    """The experiments that issue 5 asks for all exist."""
    expected = [
        f'{m}_r32_cifar{d}lt{s}.py' for m in ('hybrid_sc', 'hybrid_psc', 'ce')
        for d in (10, 100) for s in ('', '_if50', '_if10')
    ] + [
        'hybrid_sc_r50_imagenetlt.py', 'hybrid_sc_r50_inat2018.py',
        'hybrid_psc_r50_inat2018.py',
        'examples/psc_extra_loss_resnet18_cifar10.py'
    ]
    missing = set(expected) - set(ALL_CONFIGS)
    assert not missing
    assert len(LARGE_SCALE) == 3


def _num_classes(cfg: Config) -> int:
    return cfg.model.head.num_classes


def _stand_in(dataset: Dict, num_classes: int, tmp: Path) -> Dict:
    """Replace the raw dataset at the bottom of ``dataset`` by stand-in data.

    Wrappers (``dataset`` key) are walked down; the leaf keeps its pipeline.
    """
    dataset = copy.deepcopy(dataset)
    if 'dataset' in dataset:
        dataset['dataset'] = _stand_in(dataset['dataset'], num_classes, tmp)
        return dataset
    kind = dataset['type']
    pipeline = dataset.get('pipeline', [])
    if kind in ('CIFAR10', 'CIFAR100', 'SyntheticImageDataset'):
        split = 'test' if dataset.get('test_mode') or dataset.get(
            'split') == 'test' else 'train'
        return dict(
            type='SyntheticImageDataset',
            num_classes=num_classes,
            # 100 per class keeps IF 100 at >= 1 image in the rarest class.
            images_per_class=100 if split == 'train' else 1,
            split=split,
            pipeline=pipeline)
    assert kind in ('CustomDataset', 'ImageFolderDataset'), kind
    if dataset.get('ann_file'):
        # A list file in the `path label` form: one line per class (every
        # class present, as LongTailedDataset requires), the lines sharing a
        # few generated images.
        root = tmp / f'list_{num_classes}'
        if not root.exists():
            make_image_folder(root, [2] * 4, test_per_class=1, size=48)
        files = sorted((root / 'train').rglob('*.png'))
        lines = [
            f'{files[label % len(files)].relative_to(root)} {label}'
            for label in range(num_classes)
        ]
        ann = root / 'list.txt'
        ann.write_text('\n'.join(lines) + '\n')
        return dict(
            dataset, data_root=str(root), ann_file=str(ann), data_prefix='')
    root = tmp / f'folder_{num_classes}'
    if not root.exists():
        make_image_folder(
            root, [100] * 2 + [20] * (num_classes - 2), test_per_class=1)
    return dict(dataset, data_root=str(root))


def _load(name: str, tmp: Path) -> Config:
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    n = _num_classes(cfg)
    cfg.train_dataloader.dataset = _stand_in(cfg.train_dataloader.dataset, n,
                                             tmp)
    for split in ('val_dataloader', 'test_dataloader'):
        cfg[split].dataset = _stand_in(cfg[split].dataset, n, tmp)
    return cfg


@pytest.fixture(autouse=True, scope='module')
def _synthetic_images_generated_once():
    """The stand-in CIFAR images of each set generated once for the module
    (CIFAR-100's 10,000 take about half a second), each dataset getting its
    own copies of the pixels."""
    from mmlt_hybrid.datasets import SyntheticImageDataset
    generate = SyntheticImageDataset.load_data_list
    cache = {}

    def load_data_list(self):
        key = (self.num_classes, self.images_per_class, self.image_size,
               self.split, self.seed, self.noise_std)
        if key not in cache:
            cache[key] = generate(self)
        return [dict(info, img=info['img'].copy()) for info in cache[key]]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SyntheticImageDataset, 'load_data_list', load_data_list)
        yield


@pytest.fixture(scope='session')  # generated files, cheap
def data_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('standin')


@pytest.fixture
def training_step():
    """A fresh message hub holding a training step: the preprocessor's
    draws come from its step generator, whatever earlier tests left."""
    name = f'test_configs_{uuid.uuid4().hex}'
    hub = MessageHub.get_instance(name)
    for key, value in (('seed', 0), ('epoch', 0), ('iter', 0)):
        hub.update_info(key, value)
    yield hub
    MessageHub._instance_dict.pop(name, None)


def _train_collate(cfg: Config):
    """The training collate function, as the Runner builds it."""
    spec = dict(
        cfg.train_dataloader.get('collate_fn', dict(type='pseudo_collate')))
    return functools.partial(FUNCTIONS.get(spec.pop('type')), **spec)


def _label(sample: DataSample) -> int:
    assert isinstance(sample, DataSample)
    return int(sample.gt_label)


@pytest.mark.parametrize('name', ALL_CONFIGS)
def test_config_builds(name, data_tmp, training_step):
    """Model and datasets of every config build on stand-in data; a training
    item and a collated batch through the model's preprocessor have the
    documented layout."""
    cfg = _load(name, data_tmp)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
        model = MODELS.build(model_cfg)
        train_set = DATASETS.build(cfg.train_dataloader.dataset)
        test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(train_set) > 0 and len(test_set) > 0
    n = _num_classes(cfg)
    assert isinstance(train_set, HybridPairDataset)
    assert train_set.hold_in_memory == (name in IN_MEMORY)
    pre = model.data_preprocessor
    assert isinstance(pre, HybridDataPreprocessor)
    collate = _train_collate(cfg)
    labels = train_set.get_gt_labels()
    size = 224 if name in LARGE_SCALE else 32
    shape = (3, size, size)
    cls_input = cfg.model.get('cls_input', 'balanced')
    if cls_input in ('uniform', 'own_view'):
        # Hybrid-*-LA and its successors: single images; the preprocessor
        # views them (and, with own_view, makes the classifier's view).
        assert pre.view_single_images and pre.num_views == 2
        assert pre.classifier_view == (cls_input == 'own_view')
    if cfg.model.type == 'HybridClassifier' and not pre.view_single_images:
        assert model.feat_head is not None
        sampler = DATA_SAMPLERS.build(
            cfg.train_dataloader.sampler,
            default_args=dict(dataset=train_set, seed=0))
        assert isinstance(sampler, ClassBalancedPairSampler)
        triples = list(sampler)[:4]
        items = []
        for i, j, seed in triples:
            item = train_set[(i, j, seed)]
            # dict(inputs=dict(views=[...], balanced=img),
            #      data_samples=dict(uniform=..., balanced=...))
            assert set(item) == {'inputs', 'data_samples'}
            assert set(item['inputs']) == {'views', 'balanced'}
            views = item['inputs']['views']
            # Held in memory: the decoded image, viewed by the
            # preprocessor; otherwise the workers' two views.
            assert len(views) == (1 if name in IN_MEMORY else 2)
            for image in views + [item['inputs']['balanced']]:
                assert image.shape == shape and image.dtype == torch.uint8
            if name in IN_MEMORY:
                raw = train_set.get_data_info(i)['img']
                assert torch.equal(views[0],
                                   torch.from_numpy(raw).permute(2, 0, 1))
            samples = item['data_samples']
            assert set(samples) == {'uniform', 'balanced'}
            assert _label(samples['uniform']) == labels[i]
            assert _label(samples['balanced']) == labels[j]
            items.append(item)
        out = pre(collate(items), training=True)
        # inputs=dict(views=[V x (N, C, H, W)], balanced=(N, C, H, W)),
        # data_samples=dict(uniform=[N], balanced=[N])
        assert set(out['inputs']) == {'views', 'balanced'}
        assert len(out['inputs']['views']) == 2
        for tensor in out['inputs']['views'] + [out['inputs']['balanced']]:
            assert tensor.shape == (4, ) + shape
            assert tensor.dtype == torch.float32
        samples = out['data_samples']
        assert [_label(s) for s in samples['uniform']
                ] == [labels[i] for i, _, _ in triples]
        assert [_label(s) for s in samples['balanced']
                ] == [labels[j] for _, j, _ in triples]
    else:
        # Single images of the same set, uniformly shuffled (CE, LA-CE,
        # Hybrid-*-LA) or class-balanced (CE-CBS).
        assert cfg.train_dataloader.sampler.type == (
            'ClassBalancedSampler' if '_cbs_' in name else 'DefaultSampler')
        items = [train_set[k] for k in range(8)]
        for k, item in enumerate(items):
            assert set(item) == {'inputs', 'data_samples'}
            assert item['inputs'].shape == shape
            assert item['inputs'].dtype == torch.uint8
            assert _label(item['data_samples']) == labels[k]
        train = pre(collate(copy.deepcopy(items)), training=True)
        test = pre(collate(copy.deepcopy(items)), training=False)
        # One view of each training image (CE), or num_views (Hybrid-*-LA),
        # and with own_view one more for the classifier.
        views = train['inputs'] if pre.view_single_images else [
            train['inputs']
        ]
        if pre.classifier_view:
            views = train['inputs']['views'] + [train['inputs']['cls']]
            assert len(views) == pre.num_views + 1
        assert len(views) == (
            pre.num_views +
            pre.classifier_view if pre.view_single_images else 1)
        for view in views:
            assert view.shape == test['inputs'].shape == (8, ) + shape
            # The preprocessor augments the training batch only.
            assert not torch.equal(view, test['inputs'])
        assert [_label(s) for s in train['data_samples']] == list(labels[:8])
    if 'cifar' in name:
        assert len(train_set.class_counts) == n
        lt = cfg.train_dataloader.dataset.dataset
        assert lt.type == 'LongTailedDataset'
        counts = train_set.class_counts
        assert counts[0] / counts[-1] == pytest.approx(
            lt.imbalance_factor, rel=0.05)


def _one_iteration_cfg(cfg: Config, work_dir: Path) -> Config:
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = work_dir.name
    cfg.train_dataloader.batch_size = 4
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.pop('persistent_workers', None)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = None
    hooks: List = []
    for hook in cfg.get('custom_hooks', []):
        if hook['type'] == 'HybridTransitionHook':
            hook = ConfigDict(hook, by_epoch=False)
            hook.pop('switch_epoch', None)
        # ClassCountsHook stays: it gives LogitAdjustedLoss its counts.
        hooks.append(hook)
    cfg.custom_hooks = hooks
    cfg.log_level = 'WARNING'
    return cfg


@pytest.mark.parametrize('name', CIFAR_CONFIGS)
def test_cifar_config_trains_one_iteration(name, data_tmp, tmp_path):
    """One real training iteration: finite loss, parameters move."""
    cfg = _one_iteration_cfg(
        _load(name, data_tmp), tmp_path / name.replace('/', '_')[:-3])
    runner = Runner.from_cfg(cfg)
    before = {
        k: v.detach().clone()
        for k, v in runner.model.named_parameters()
    }
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 1 and losses[0] == losses[0]  # one finite value
    moved = [
        k for k, v in runner.model.named_parameters()
        if not v.detach().equal(before[k])
    ]
    assert any(k.startswith('backbone.') for k in moved)
    if cfg.model.type != 'HybridClassifier':
        assert any(k.startswith('head.') for k in moved)
    else:
        # alpha = 1 at the start: the feature branch carries the loss.
        assert any(k.startswith('feat_head.') for k in moved)
        hook = [
            h for h in cfg.custom_hooks if h['type'] == 'HybridTransitionHook'
        ][0]
        # parabolic: 1 at the first iteration; constant: its value.
        expected = hook.get('value') if hook['schedule'] == 'constant' else 1
        alpha = runner.message_hub.get_scalar('train/alpha').current()
        assert alpha == pytest.approx(expected)


def _train_tool_cfg(name: str) -> Config:
    """The config as ``python tools/train.py CONFIG`` resolves it."""
    tool = load_tool('train.py')
    path = str(CONFIG_DIR / name)
    return tool.merge_args(Config.fromfile(path), tool.parse_args([path]))


@pytest.mark.parametrize('name,dataset,num_classes,tau,feat', [
    ('hybrid_psc_r32_cifar100lt.py', 'CIFAR100', 100, 0.1, 'PSC'),
    ('hybrid_psc_r32_cifar10lt.py', 'CIFAR10', 10, 1.0, 'PSC'),
    ('hybrid_sc_r32_cifar100lt.py', 'CIFAR100', 100, 0.1, 'SupCon'),
    ('hybrid_sc_r32_cifar10lt.py', 'CIFAR10', 10, 0.1, 'SupCon'),
])
def test_hybrid_configs_are_the_paper_recipe(name, dataset, num_classes, tau,
                                             feat):
    """Key values of the resolved config against docs/method.md ("The
    hybrid network" to "Training recipe")."""
    cfg = _train_tool_cfg(name)
    # Training recipe: batch 512 per branch, SGD 0.9, wd 1e-4, lr 0.5,
    # 200 epochs, x0.1 at 120 and 160, lr scaled linearly from batch 512.
    assert cfg.train_dataloader.batch_size == 512
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.5,
                                                                  0.9, 1e-4)
    sched = cfg.param_scheduler
    assert (sched.type, sched.milestones, sched.gamma,
            sched.by_epoch) == ('MultiStepLR', [120, 160], 0.1, True)
    assert cfg.train_cfg.max_epochs == 200 and cfg.train_cfg.by_epoch
    assert cfg.auto_scale_lr.base_batch_size == 512
    assert not cfg.auto_scale_lr.get('enable', False)
    # The alpha schedule: alpha(T) = 1 - (T / T_max)^2 over the epochs.
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert hooks['HybridTransitionHook']['schedule'] == 'parabolic'
    assert hooks['HybridTransitionHook'].get('by_epoch', True)
    assert 'ClassCountsHook' in hooks
    # Hybrid network, losses, recipe: ResNet-32, pooled 64-d feature,
    # linear CE classifier, 128-d projection, tau 0.1 (PSC on CIFAR-10:
    # 1.0), PSC negatives only.
    model = cfg.model
    assert model.type == 'HybridClassifier'
    assert (model.backbone.type, model.backbone.depth) == ('CifarResNet', 32)
    assert model.neck.type == 'GlobalAveragePooling'
    assert (model.head.type, model.head.num_classes, model.head.in_channels,
            model.head.loss.type) == ('LinearClsHead', num_classes, 64,
                                      'CrossEntropyLoss')
    head = model.feat_head
    assert (head.type, head.in_channels, head.out_channels) == (f'{feat}Head',
                                                                64, 128)
    assert head.get('hid_channels') is None  # hidden width = feature width
    assert (head.loss.type, head.loss.temperature) == (f'{feat}Loss', tau)
    if feat == 'PSC':
        assert head.num_classes == num_classes
        assert head.loss.get('denominator', 'negatives') == 'negatives'
        assert head.loss.get('num_negatives') is None
    # Data protocol: the standard CIFAR-LT cut, IF 100, balanced test set.
    train = cfg.train_dataloader
    assert train.sampler.type == 'ClassBalancedPairSampler'
    assert train.dataset.type == 'HybridPairDataset'
    lt = train.dataset.dataset
    assert (lt.type, lt.imbalance_factor, lt.profile,
            lt.seed) == ('LongTailedDataset', 100, 'exp', 0)
    assert (lt.dataset.type, lt.dataset.split) == (dataset, 'train')
    assert (cfg.test_dataloader.dataset.type,
            cfg.test_dataloader.dataset.split) == (dataset, 'test')
    # Section 4: crop 32 pad 4, horizontal flip, grayscale p=0.2 (ITU-R 601
    # weights, RGB order, 3 channels kept), two views of the uniform image,
    # the same augmentation for the balanced image; run on the whole batch
    # by the data preprocessor. The decoded set is held in memory and only
    # packed: no worker processes.
    assert train.dataset.pipeline == [dict(type='PackInputs')]
    assert train.dataset.hold_in_memory is True
    assert train.dataset.get('balanced_pipeline') is None
    assert (train.num_workers, train.persistent_workers) == (0, False)
    assert train.collate_fn == dict(type='default_collate')
    assert cfg.model.get('data_preprocessor') is None
    pre = cfg.data_preprocessor
    assert (pre.type, pre.num_views, pre.to_rgb) == ('HybridDataPreprocessor',
                                                     2, False)
    assert pre.batch_transforms == [
        dict(type='BatchRandomCrop', crop_size=32, padding=4),
        dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='BatchRandomGrayscale',
            prob=0.2,
            keep_channels=True,
            channel_weights=(0.299, 0.587, 0.114)),
    ]
    assert pre.get('balanced_transforms') is None
    # Section 6: many > 100, medium 20..100, few < 20 training images.
    evaluator = cfg.test_evaluator
    assert evaluator.type == 'LongTailAccuracy'
    assert evaluator.get('many_shot_thr', 100) == 100
    assert evaluator.get('few_shot_thr', 20) == 20


STRONG = sorted(c for c in ALL_CONFIGS if '_strong_' in c)


@pytest.mark.parametrize('name', STRONG)
def test_strong_recipe_configs(name):
    """The stronger recipe as README's table says: RandAugment and Cutout
    after crop and flip for every image the model trains on (Hybrid-BCL: for
    the classifier's own view, the contrastive views keep the paper's), 5
    warm-up epochs then cosine decay to the last epoch, on the method's
    config."""
    cfg = _train_tool_cfg(name)
    epochs = 400 if name.endswith('_400e.py') else 200
    pre = cfg.data_preprocessor
    strong = [
        'BatchRandomCrop', 'BatchRandomFlip', 'BatchRandAugment', 'BatchCutout'
    ]
    if name.startswith('hybrid_bcl_'):
        assert [t['type'] for t in pre.balanced_transforms] == strong
        assert [t['type'] for t in pre.batch_transforms] == [
            'BatchRandomCrop', 'BatchRandomFlip', 'BatchRandomGrayscale'
        ]
    else:
        assert [t['type'] for t in pre.batch_transforms] == strong
        assert pre.get('balanced_transforms') is None  # the same for all
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 5)
    assert (cosine.type, cosine.begin, cosine.end) == ('CosineAnnealingLR', 5,
                                                       epochs)
    assert cfg.train_cfg.max_epochs == epochs
    base = Config.fromfile(
        str(CONFIG_DIR / (name.split('_strong_')[0] + '.py')))
    assert cfg.model.type == base.model.type
    assert cfg.model.get('cls_input') == base.model.get('cls_input')
    if name.endswith('_mix_200e.py'):  # Mixup / CutMix on the balanced part
        assert cfg.model.get('cls_input', 'balanced') == 'balanced'
        assert [a['type']
                for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    else:
        assert cfg.model.head.loss.type == 'LogitAdjustedLoss'
        assert 'train_cfg' not in cfg.model


def test_if_variants_change_only_the_imbalance_factor():
    for method in ('hybrid_sc', 'hybrid_psc', 'ce'):
        for data in ('cifar10lt', 'cifar100lt'):
            base = Config.fromfile(str(CONFIG_DIR / f'{method}_r32_{data}.py'))
            for factor in (50, 10):
                variant = Config.fromfile(
                    str(CONFIG_DIR / f'{method}_r32_{data}_if{factor}.py'))
                assert variant.train_dataloader.dataset.dataset.\
                    imbalance_factor == factor
                variant.train_dataloader.dataset.dataset.imbalance_factor = 100
                assert variant.to_dict() == base.to_dict()


@pytest.mark.parametrize('data', ['cifar10lt', 'cifar100lt'])
def test_ce_configs_train_on_the_hybrid_data(data):
    """The plain-CE baseline: the same held-in-memory long-tailed set and
    the same on-device augmentation as the hybrid configs, single images
    uniformly shuffled, no class-balanced branch."""
    ce = Config.fromfile(str(CONFIG_DIR / f'ce_r32_{data}.py'))
    hybrid = Config.fromfile(str(CONFIG_DIR / f'hybrid_sc_r32_{data}.py'))
    assert ce.model.type == 'ImageClassifier'
    assert ce.model.get('feat_head') is None
    assert ce.train_dataloader.sampler == dict(
        type='DefaultSampler', shuffle=True)
    for key in ('dataset', 'batch_size', 'num_workers', 'persistent_workers',
                'collate_fn'):
        assert ce.train_dataloader[key] == hybrid.train_dataloader[key]
    assert ce.data_preprocessor == hybrid.data_preprocessor
    assert ce.data_preprocessor.batch_transforms


@pytest.mark.parametrize('name', ALL_CONFIGS)
def test_auto_scale_lr_keeps_the_lr_at_the_configs_own_batch(name):
    """--auto-scale-lr at the total batch the config is for leaves its lr as
    it is: auto_scale_lr.base_batch_size is train_dataloader.batch_size (one
    GPU), or the config documents on its auto_scale_lr line that the lr is
    for another total batch (``# lr 0.1 is for 4 GPUs x 64``). The quick
    start's lr, set for batch 64, was scaled again from the recipe's 512
    (0.0625 -> 0.0078)."""
    import re
    from types import SimpleNamespace

    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper

    path = CONFIG_DIR / name
    train = load_tool('train.py')
    cfg = train.merge_args(
        Config.fromfile(str(path)),
        train.parse_args(
            [str(path), '--auto-scale-lr', '--work-dir', 'unused']))
    batch = cfg.train_dataloader.batch_size
    base = cfg.auto_scale_lr.base_batch_size
    lr = cfg.optim_wrapper.optimizer.lr
    gpus = 1
    if base != batch:
        # The config file (leaf first) that sets auto_scale_lr, and its note.
        chain, line = [path], None
        while chain and line is None:
            current = chain.pop(0)
            line = next((t for t in current.read_text().splitlines()
                         if t.startswith('auto_scale_lr')), None)
            chain += [(current.parent / b).resolve()
                      for b in Config._get_base_files(str(current))
                      if '::' not in b]
        note = re.search(r'#.*\blr (\S+) is for (\d+) GPUs? x (\d+)\b', line
                         or '')
        assert note, (
            f'{name}: auto_scale_lr.base_batch_size={base} but '
            f'train_dataloader.batch_size={batch} (x 1 GPU), so '
            f'--auto-scale-lr changes lr={lr} at the config\'s own batch; set '
            f'base_batch_size={batch}, or document the total batch the lr '
            'is for on the auto_scale_lr line: "# lr X is for N GPUs x B"')
        gpus, per_gpu = int(note[2]), int(note[3])
        assert (float(note[1]), per_gpu, gpus * per_gpu) == (lr, batch, base)
    # What --auto-scale-lr does (mmengine's Runner.scale_lr) on `gpus` GPUs.
    wrapper = OptimWrapper(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr))
    runner = SimpleNamespace(
        _train_dataloader=cfg.train_dataloader,
        world_size=gpus,
        param_schedulers=None,
        logger=MMLogger.get_current_instance())
    assert cfg.auto_scale_lr.enable
    Runner.scale_lr(runner, wrapper, cfg.auto_scale_lr)
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(lr)
