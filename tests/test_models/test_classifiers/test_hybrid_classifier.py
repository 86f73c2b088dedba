"""HybridClassifier: one backbone pass over the explicit hybrid batch, the
heads' rows and labels, alpha weighting, the one-off label check,
ImageClassifier behaviour at test time, clear errors."""
import copy
import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import NoReadBack, tiny_hybrid_cfg
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.engine.hooks import ModelDataCheckHook
from mmlt_hybrid.models.classifiers import HybridClassifier

NUM_CLASSES = 4


@pytest.fixture(autouse=True)
def quiet_init_log():
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def model_cfg(feat_head='SupConHead', **kwargs):
    return tiny_hybrid_cfg(NUM_CLASSES, feat_head, **kwargs)


def build(feat_head='SupConHead', **kwargs):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(feat_head, **kwargs))
    model.init_weights()
    return model


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def hybrid_batch(num_views=2,
                 uniform=(0, 1, 1, 3),
                 balanced=(2, 3, 0, 1),
                 seed=0):
    """What HybridDataPreprocessor hands the model in training."""
    g = torch.Generator().manual_seed(seed)
    n = len(uniform)
    inputs = dict(
        views=[
            torch.randn(n, 3, 32, 32, generator=g) for _ in range(num_views)
        ],
        balanced=torch.randn(n, 3, 32, 32, generator=g))
    return inputs, dict(uniform=samples(uniform), balanced=samples(balanced))


def test_default_data_preprocessor():
    model = build()
    assert type(model.data_preprocessor).__name__ == 'HybridDataPreprocessor'
    assert model.alpha is None
    assert model.cls_input == 'balanced'


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
@pytest.mark.parametrize('num_views', [1, 2, 3])
def test_single_backbone_pass_over_views_then_balanced(feat_head, num_views):
    model = build(feat_head)
    model.alpha = 0.5
    seen = []
    model.backbone.register_forward_hook(
        lambda module, args, out: seen.append(args[0].detach().clone()))
    inputs, data_samples = hybrid_batch(num_views=num_views)
    losses = model(inputs, data_samples, mode='loss')
    assert set(losses) == {'loss_feat', 'loss_cls'}
    assert len(seen) == 1  # one pass over (V + 1) * N images
    assert seen[0].shape[0] == (num_views + 1) * 4
    # The rows in order: view 1, ..., view V, balanced.
    assert torch.equal(seen[0],
                       torch.cat(inputs['views'] + [inputs['balanced']]))


def reference_losses(model, inputs, uniform, balanced):
    """Each head on its rows, labels laid out by hand; the features come
    from the same single pass (BatchNorm statistics of the whole batch)."""
    views = inputs['views']
    n = len(uniform)
    feats = model.extract_feat(torch.cat(views + [inputs['balanced']]))[-1]
    assert feats.shape[0] == (len(views) + 1) * n
    # Row v * n + k is view v of image k: label uniform[k].
    row_labels = torch.tensor(
        [uniform[k] for v in range(len(views)) for k in range(n)])
    feat_loss = model.feat_head.loss(feats[:len(views) * n], row_labels)
    logits = model.head.fc(feats[len(views) * n:])
    cls_loss = F.cross_entropy(logits, torch.tensor(balanced))
    return feat_loss['loss'], cls_loss


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
@pytest.mark.parametrize('alpha', [1.0, 0.64, 0.0])
def test_alpha_weights_separately_computed_losses(feat_head, alpha):
    model = build(feat_head)
    uniform, balanced = [0, 1, 1, 3], [2, 3, 0, 1]
    inputs, data_samples = hybrid_batch(2, uniform, balanced)
    feat_loss, cls_loss = reference_losses(model, inputs, uniform, balanced)
    model.alpha = alpha
    losses = model.loss(inputs, data_samples)
    assert losses['loss_feat'].item() == pytest.approx(
        alpha * feat_loss.item(), rel=1e-5, abs=1e-7)
    assert losses['loss_cls'].item() == pytest.approx(
        (1 - alpha) * cls_loss.item(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize('num_views', [1, 3])
def test_feat_labels_repeated_per_view_and_cls_on_balanced_rows(num_views):
    model = build('SupConHead')
    model.alpha = 0.5
    uniform, balanced = [0, 1, 2, 1], [3, 3, 2, 0]
    inputs, data_samples = hybrid_batch(num_views, uniform, balanced)
    feat_loss, cls_loss = reference_losses(model, inputs, uniform, balanced)
    losses = model.loss(inputs, data_samples)
    assert losses['loss_feat'].item() == pytest.approx(
        0.5 * feat_loss.item(), rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(
        0.5 * cls_loss.item(), rel=1e-5)
    # The layout matters: interleaved labels (view of image k next to its
    # other views) give another feature loss, and the classifier on the
    # uniform rows another cross-entropy.
    if num_views > 1:
        feats = model.extract_feat(
            torch.cat(inputs['views'] + [inputs['balanced']]))[-1]
        interleaved = torch.tensor(uniform).repeat_interleave(num_views)
        wrong = model.feat_head.loss(feats[:num_views * 4], interleaved)
        assert abs(wrong['loss'].item() - feat_loss.item()) > 1e-4
    # Changing the uniform images changes only the feature loss' inputs;
    # the classifier loss still reads the (unchanged) balanced rows - up to
    # the BatchNorm statistics, which are shared, so compare in eval mode.
    model.eval()
    base = model.loss(inputs, data_samples)
    inputs['views'] = [v + 1.0 for v in inputs['views']]
    moved = model.loss(inputs, data_samples)
    assert moved['loss_cls'].item() == pytest.approx(
        base['loss_cls'].item(), rel=1e-6)
    assert moved['loss_feat'].item() != pytest.approx(
        base['loss_feat'].item(), rel=1e-6)


@pytest.mark.parametrize('alpha', [1.0, 0.0])
def test_alpha_one_and_zero_silence_one_branch(alpha):
    model = build('PSCHead')
    model.alpha = alpha
    inputs, data_samples = hybrid_batch(num_views=2)
    sum(model.loss(inputs, data_samples).values()).backward()
    cls_grad = model.head.fc.weight.grad.abs().sum().item()
    proto_grad = model.feat_head.prototypes.grad.abs().sum().item()
    backbone_grad = model.backbone.conv1.weight.grad.abs().sum().item()
    assert backbone_grad > 0
    if alpha == 1.0:
        assert cls_grad == 0 and proto_grad > 0
    else:
        assert proto_grad == 0 and cls_grad > 0


def test_cls_head_extra_outputs_are_prefixed():
    cfg = model_cfg()
    cfg['head']['cal_acc'] = True
    model = MODELS.build(cfg)
    model.alpha = 0.5
    losses = model.loss(*hybrid_batch())
    assert set(losses) == {'loss_feat', 'loss_cls', 'cls_accuracy_top-1'}


def test_error_without_alpha():
    model = build()
    with pytest.raises(RuntimeError, match='HybridTransitionHook'):
        model.loss(*hybrid_batch())


def test_batch_without_balanced_part_refused():
    model = build()
    model.alpha = 0.5
    inputs, data_samples = hybrid_batch(num_views=2)
    flat = torch.cat(inputs['views'] + [inputs['balanced']])
    all_samples = data_samples['uniform'] + data_samples['balanced']
    # Single images (a Tensor) or a list of views: not the pairs of the
    # class-balanced sampler, which the preprocessor makes a dict.
    for bad in (flat, list(inputs['views'])):
        with pytest.raises(
                ValueError,
                match=r"HybridClassifier\(cls_input='balanced'\): "
                r"the batch has no class-balanced part; 'uniform' "
                r'takes views of single images \(DefaultSampler\),'
                r" 'balanced' pairs of ClassBalancedPairSampler \+ "
                r'HybridPairDataset'):
            model.loss(bad, all_samples)


def test_construction_needs_both_heads_and_a_known_cls_input():
    # Both heads are required arguments: the error names the missing one.
    for key in ('feat_head', 'head'):
        cfg = model_cfg()
        cfg.pop(key)
        with pytest.raises(
                TypeError,
                match=r'HybridClassifier.*missing 1 required '
                rf"keyword-only argument: '{key}'"):
            MODELS.build(cfg)
    for cls_input in ('both', 'Uniform', None):
        with pytest.raises(
                ValueError,
                match=rf'HybridClassifier: cls_input={cls_input!r}'
                r" is not allowed; it must be one of \('balanced',"
                r" 'uniform', 'own_view'\)"):
            MODELS.build(model_cfg(cls_input=cls_input))


def test_psc_num_classes_mismatch():
    cfg = model_cfg('PSCHead')
    cfg['feat_head']['num_classes'] = NUM_CLASSES + 1
    with pytest.raises(
            ValueError,
            match=r'feat_head.num_classes=5 differs from '
            r"head.num_classes=4; set both to the dataset's"):
        MODELS.build(cfg)


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
def test_loss_reads_nothing_back(feat_head):
    # Labels are checked once before training, not per step: the training
    # loss never synchronises with the device.
    model = build(feat_head)
    model.alpha = 0.5
    inputs, data_samples = hybrid_batch(num_views=2)
    expected = model.loss(inputs, data_samples)
    with NoReadBack():
        with pytest.raises(AssertionError, match='read back'):
            bool(inputs['balanced'].any())  # the guard works
        losses = model.loss(inputs, data_samples)
    for key in ('loss_feat', 'loss_cls'):
        assert losses[key].item() == pytest.approx(
            expected[key].item(), rel=1e-5)


def _stub_runner(model, dataset):
    return SimpleNamespace(
        model=model,
        train_dataloader=SimpleNamespace(dataset=dataset, batch_size=4),
        train_loop=None)


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
def test_the_training_labels_are_checked_once_before_training(
        feat_head, toy_label_dataset):
    model = build(feat_head)
    hook = ModelDataCheckHook()
    # Labels 0..5 in a set that names 4 classes, as the heads have.
    too_many = toy_label_dataset([0, 1, 2, 3, 5, 4], num_classes=4)
    with pytest.raises(
            ValueError,
            match=r'label 5 is out of range for '
            r"the heads' num_classes=4"):
        hook.before_train(_stub_runner(model, too_many))
    hook.before_train(_stub_runner(model, toy_label_dataset([0, 1, 3, 2])))


def test_predict_and_extract_feat_like_image_classifier():
    hybrid = build('PSCHead')
    cfg = model_cfg()
    cfg.pop('feat_head')
    cfg.update(type='ImageClassifier')
    plain = MODELS.build(cfg)
    state = {
        k: v
        for k, v in hybrid.state_dict().items()
        if not k.startswith('feat_head.')
    }
    plain.load_state_dict(state, strict=True)
    hybrid.eval()
    plain.eval()
    images = torch.randn(3, 3, 32, 32)
    assert torch.equal(
        hybrid.extract_feat(images)[0],
        plain.extract_feat(images)[0])
    assert torch.equal(hybrid(images), plain(images))  # mode='tensor'
    got = hybrid.predict(images)
    expected = plain.predict(images)
    for a, b in zip(got, expected):
        assert torch.equal(a.pred_score, b.pred_score)
        assert torch.equal(a.pred_label, b.pred_label)

    # test_step through the (hybrid) data preprocessor on a plain batch.
    data = pseudo_collate([
        dict(
            inputs=torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8),
            data_samples=DataSample().set_gt_label(i % NUM_CLASSES))
        for i in range(3)
    ])
    plain_data = copy.deepcopy(data)
    out = hybrid.test_step(data)
    ref = plain.test_step(plain_data)
    assert len(out) == 3
    for a, b in zip(out, ref):
        assert torch.equal(a.pred_label, b.pred_label)


def pair_items(n, num_views):
    """HybridPairDataset items (decoded uint8 images)."""
    g = torch.Generator().manual_seed(n)

    def image():
        return torch.randint(
            0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)

    return [
        dict(
            inputs=dict(
                views=[image() for _ in range(num_views)], balanced=image()),
            data_samples=dict(
                uniform=DataSample().set_gt_label(i % 2),
                balanced=DataSample().set_gt_label(3 - i % 2)))
        for i in range(n)
    ]


@pytest.mark.parametrize('data_views,num_views', [(2, None), (1, 2)])
def test_train_step_on_collated_hybrid_batch(data_views, num_views):
    """The data contract: HybridPairDataset items -> pseudo_collate ->
    HybridDataPreprocessor -> HybridClassifier.loss."""
    model = build(
        'SupConHead',
        data_preprocessor=dict(
            num_views=num_views,
            batch_transforms=[dict(type='BatchRandomFlip', prob=0.5)]))
    model.alpha = 0.75
    rows = []
    model.backbone.register_forward_hook(
        lambda module, args, out: rows.append(args[0].shape[0]))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.head.fc.weight.detach().clone()
    log_vars = model.train_step(
        pseudo_collate(pair_items(4, data_views)), optim)
    assert rows == [3 * 4]  # 2 views + balanced, 4 images each
    assert {'loss', 'loss_feat', 'loss_cls'} <= set(log_vars)
    assert log_vars['loss'].item() == pytest.approx(
        log_vars['loss_feat'].item() + log_vars['loss_cls'].item(), rel=1e-6)
    assert not torch.equal(before, model.head.fc.weight)


def test_is_image_classifier_subclass():
    from mmpretrain.models import ImageClassifier
    assert issubclass(HybridClassifier, ImageClassifier)
