"""HybridClassifier(cls_input='uniform'), Hybrid-SC-LA (issue 9, variant b):
both heads read the V views of the N uniform images (2N rows a step for
V = 2, no class-balanced batch); the preprocessor views single images;
wrong batches are refused; the config trains through tools/train.py."""
import copy
import textwrap

import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import default_collate
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

# The hybrid model of test_hybrid_classifier.py (depth-8 CifarResNet, 4
# classes), in the uniform mode; its autouse fixture quiets the init log.
from test_hybrid_classifier import (
    NUM_CLASSES,
    model_cfg,
    quiet_init_log,  # noqa: F401
)
from tool_runner import REPO_ROOT, python_tool, run, scalars

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.utils import HybridDataPreprocessor


def build(feat_head='SupConHead', **kwargs):
    cfg = model_cfg(
        feat_head, cls_input='uniform', data_preprocessor=dict(num_views=2))
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def view_batch(labels=(0, 1, 1, 3), num_views=2, seed=0):
    """What the preprocessor hands the model: V tensors of the N images."""
    g = torch.Generator().manual_seed(seed)
    views = [
        torch.randn(len(labels), 3, 32, 32, generator=g)
        for _ in range(num_views)
    ]
    return views, samples(labels)


def test_uniform_mode_makes_the_preprocessor_view_single_images():
    model = build()
    assert model.cls_input == 'uniform'
    pre = model.data_preprocessor
    assert isinstance(pre, HybridDataPreprocessor)
    assert pre.view_single_images is True and pre.num_views == 2
    # The paper's mode leaves single images as they are.
    paper = build(cls_input='balanced')
    assert paper.data_preprocessor.view_single_images is False


def test_uniform_mode_refuses_a_preprocessor_that_cannot_view():
    # Viewing needs the number of views ...
    with pytest.raises(
            ValueError,
            match=r"HybridClassifier\(cls_input='uniform'\): the "
            r'classifier reads views of single images, .* '
            r'HybridDataPreprocessor with num_views=None and '
            r'batch_augments=None'):
        build(data_preprocessor=dict())
    # ... and no Mixup / CutMix, which would mix the feature head's views.
    with pytest.raises(
            ValueError,
            match=r"cls_input='uniform'.*num_views=2 "
            r'and batch_augments=RandomBatchAugment'):
        build(
            data_preprocessor=dict(
                num_views=2,
                num_classes=4,
                batch_augments=dict(augments=dict(type='Mixup', alpha=1.))))
    # A preprocessor of another kind cannot view single images.
    with pytest.raises(
            ValueError, match=r'got ClsDataPreprocessor with '
            r'num_views=None'):
        build(data_preprocessor=dict(type='ClsDataPreprocessor'))
    # The flag is the model's, not the config's.
    with pytest.raises(TypeError, match='view_single_images'):
        build(data_preprocessor=dict(num_views=2, view_single_images=True))


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
@pytest.mark.parametrize('num_views', [1, 2, 3])
def test_one_pass_over_the_views_and_both_heads_on_all_rows(
        feat_head, num_views):
    model = build(feat_head)
    labels = [0, 1, 1, 3]
    views, data_samples = view_batch(labels, num_views)
    seen = []
    model.backbone.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone()))
    # Reference: features of the same single pass; row v * N + k is view v
    # of image k, whose label is labels[k]; the linear classifier and
    # cross-entropy written out.
    feats = model.extract_feat(torch.cat(views))[-1]
    row_labels = torch.tensor(
        [labels[k] for _ in range(num_views) for k in range(len(labels))])
    feat_ref = model.feat_head.loss(feats, row_labels)['loss']
    logits = feats @ model.head.fc.weight.t() + model.head.fc.bias
    cls_ref = F.cross_entropy(logits, row_labels)
    seen.clear()
    model.alpha = 0.36
    losses = model.loss(views, data_samples)
    assert set(losses) == {'loss_feat', 'loss_cls'}
    assert len(seen) == 1  # one backbone pass, V * N rows in view order
    assert torch.equal(seen[0], torch.cat(views))
    assert losses['loss_feat'].item() == pytest.approx(
        0.36 * feat_ref.item(), rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(
        0.64 * cls_ref.item(), rel=1e-5)


def test_single_image_training_batch_gives_2n_rows_to_the_backbone():
    """The held-in-memory data path: N single uint8 images, collated by
    default_collate, through the model's own preprocessor: 2N rows reach
    the backbone (not 3N as in the paper's mode, not N as in plain CE)."""
    hub = MessageHub.get_instance('test_hybrid_uniform_mode')
    for key, value in (('seed', 0), ('epoch', 0), ('iter', 0)):
        hub.update_info(key, value)
    model = build(
        data_preprocessor=dict(
            num_views=2,
            batch_transforms=[dict(type='BatchRandomFlip', prob=0.5)]))
    model.alpha = 0.5
    g = torch.Generator().manual_seed(1)
    items = [
        dict(
            inputs=torch.randint(
                0, 256, (3, 32, 32), generator=g, dtype=torch.uint8),
            data_samples=DataSample().set_gt_label(k % NUM_CLASSES))
        for k in range(6)
    ]
    rows = []
    model.backbone.register_forward_pre_hook(
        lambda module, args: rows.append(args[0].shape[0]))
    data = model.data_preprocessor(default_collate(items), training=True)
    losses = model(**data, mode='loss')
    assert rows == [2 * 6]
    assert losses['loss_cls'].item() > 0 and losses['loss_feat'].item() > 0
    # Evaluation: one view of each image, the classifier's scores.
    rows.clear()
    model.eval()
    with torch.no_grad():
        preds = model.val_step(default_collate(copy.deepcopy(items)))
    assert rows == [6] and len(preds) == 6


def test_uniform_mode_refuses_a_hybrid_batch():
    model = build()
    model.alpha = 0.5
    views, data_samples = view_batch()
    hybrid = dict(views=views, balanced=views[0])
    with pytest.raises(
            ValueError,
            match=r"HybridClassifier\(cls_input='uniform'\): the "
            r"batch has pairs; 'uniform' takes views of single "
            r'images \(DefaultSampler\), .*'
            r'ClassBalancedPairSampler'):
        model.loss(hybrid, dict(uniform=data_samples, balanced=data_samples))
    # A single-image Tensor cannot reach the loss in this mode: the
    # preprocessor, which the model makes view single images at
    # construction, makes every training batch a list of views.


def _write_tiny_config(path, loss=None):
    """The shipped Hybrid-SC-LA config on generated data: ResNet-8, 10
    classes of 24 ... 2 images (IF 10, 95 images), batch 16, 2 epochs."""
    head = f'head=dict(loss={loss!r}), ' if loss else ''
    path.write_text(
        textwrap.dedent(f"""\
        _base_ = [{str(REPO_ROOT / 'configs' /
                       'hybrid_sc_la_r32_cifar10lt.py')!r}]
        model = dict({head}backbone=dict(depth=8))
        train_dataloader = dict(
            batch_size=16,
            dataset=dict(dataset=dict(
                imbalance_factor=10,
                dataset=dict(_delete_=True, type='SyntheticImageDataset',
                             num_classes=10, images_per_class=24,
                             split='train'))))
        val_dataloader = dict(
            batch_size=20, num_workers=0,
            dataset=dict(_delete_=True, type='SyntheticImageDataset',
                         num_classes=10, images_per_class=2, split='test',
                         pipeline=[dict(type='PackInputs')]))
        test_dataloader = val_dataloader
        optim_wrapper = dict(optimizer=dict(lr=0.05))
        param_scheduler = dict(milestones=[2])
        train_cfg = dict(max_epochs=2, val_interval=2)
        default_hooks = dict(
            logger=dict(interval=1),
            checkpoint=dict(interval=2, max_keep_ckpts=1))
        log_processor = dict(window_size=1)
        """))
    return path


def test_hybrid_sc_la_trains_through_tools_train(tmp_path):
    config = _write_tiny_config(tmp_path / 'tiny_hybrid_sc_la.py')
    work_dir = tmp_path / 'work'
    run(python_tool('train.py', config, '--work-dir', work_dir))
    records = scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    # 95 images, batch 16, DefaultSampler: 6 iterations an epoch.
    assert [r['iter'] for r in train] == list(range(1, 13))
    for r in train:
        assert r['loss'] == pytest.approx(
            r['loss_feat'] + r['loss_cls'], rel=1e-5)
        # alpha 1 in epoch 1, 1 - (1/2)^2 in epoch 2 (parabolic).
        alpha = 1.0 if r['epoch'] == 1 else 0.75
        assert r['alpha'] == pytest.approx(alpha, abs=1e-12)
        if alpha == 1.0:
            assert r['loss_cls'] == 0
        else:
            assert r['loss_cls'] > 0 and r['loss_feat'] > 0
    val = [r for r in records if 'long_tail/top1' in r]
    assert len(val) == 1 and 0 <= val[0]['long_tail/top1'] <= 100
    assert (work_dir / 'epoch_2.pth').exists()


LA_LOSS = dict(type='LogitAdjustedLoss', tau=1.0)


@pytest.mark.parametrize('data', ['cifar10lt', 'cifar100lt'])
@pytest.mark.parametrize('row,base,changes', [
    ('hybrid_sc_la', 'hybrid_sc',
     dict(cls_input='uniform', loss=LA_LOSS, sampler='DefaultSampler')),
    ('hybrid_psc_la', 'hybrid_psc',
     dict(cls_input='uniform', loss=LA_LOSS, sampler='DefaultSampler')),
    ('ce_la', 'ce', dict(loss=LA_LOSS)),
    ('ce_cbs', 'ce', dict(sampler='ClassBalancedSampler')),
])
def test_table_row_configs_change_only_their_row(data, row, base, changes):
    """Each new config is its base config (the paper's Hybrid-SC/PSC or
    plain CE on the same data) with only the changes of its table row."""
    from mmengine.config import Config
    variant = Config.fromfile(
        str(REPO_ROOT / 'configs' / f'{row}_r32_{data}.py')).to_dict()
    ref = Config.fromfile(
        str(REPO_ROOT / 'configs' / f'{base}_r32_{data}.py')).to_dict()
    if 'cls_input' in changes:
        ref['model']['cls_input'] = changes['cls_input']
    if 'loss' in changes:
        ref['model']['head']['loss'] = changes['loss']
    if 'sampler' in changes:
        ref['train_dataloader']['sampler'] = dict(type=changes['sampler'])
        if changes['sampler'] == 'DefaultSampler':
            ref['train_dataloader']['sampler']['shuffle'] = True
    assert variant == ref
