"""HybridClassifier: one backbone pass, alpha weighting, ImageClassifier
behaviour at test time, clear errors."""
import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.classifiers import HybridClassifier
from mmpretrain.registry import MODELS

NUM_CLASSES = 4


@pytest.fixture(autouse=True)
def quiet_init_log():
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def model_cfg(feat_head='SupConHead', **kwargs):
    feat_heads = dict(
        SupConHead=dict(type='SupConHead', in_channels=64, out_channels=16),
        PSCHead=dict(
            type='PSCHead', num_classes=NUM_CLASSES, in_channels=64,
            out_channels=16))
    cfg = dict(
        type='HybridClassifier',
        backbone=dict(type='CifarResNet', depth=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=64),
        feat_head=feat_heads[feat_head])
    cfg.update(kwargs)
    return cfg


def build(feat_head='SupConHead', **kwargs):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(feat_head, **kwargs))
    model.init_weights()
    return model


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def hybrid_batch(num_views=2, uniform=(0, 1, 1, 3), balanced=(2, 3, 0, 1)):
    n = len(uniform)
    inputs = torch.randn((num_views + 1) * n, 3, 32, 32)
    return inputs, samples(uniform) + samples(balanced)


def test_default_data_preprocessor():
    model = build()
    assert type(model.data_preprocessor).__name__ == 'HybridDataPreprocessor'
    assert model.alpha is None


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
def test_loss_keys_and_single_backbone_pass(feat_head):
    model = build(feat_head)
    model.alpha = 0.5
    calls = []
    model.backbone.register_forward_hook(
        lambda module, args, out: calls.append(args[0].shape[0]))
    inputs, data_samples = hybrid_batch(num_views=2)
    losses = model(inputs, data_samples, mode='loss')
    assert set(losses) == {'loss_feat', 'loss_cls'}
    assert calls == [12]  # one pass over 2 * 4 views + 4 balanced images


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
@pytest.mark.parametrize('alpha', [1.0, 0.64, 0.0])
def test_alpha_weights_separately_computed_losses(feat_head, alpha):
    model = build(feat_head)
    inputs, data_samples = hybrid_batch(num_views=2)
    n = 4
    # Reference: the same single pass (BN statistics of the whole batch),
    # then each head on its rows.
    feats = model.extract_feat(inputs)[-1]
    feat_loss = model.feat_head.loss((feats[:2 * n], ), data_samples[:n])
    logits = model.head.fc(feats[2 * n:])
    cls_loss = F.cross_entropy(logits, torch.tensor([2, 3, 0, 1]))

    model.alpha = alpha
    losses = model.loss(inputs, data_samples)
    assert losses['loss_feat'].item() == pytest.approx(
        alpha * feat_loss['loss'].item(), rel=1e-5, abs=1e-7)
    assert losses['loss_cls'].item() == pytest.approx(
        (1 - alpha) * cls_loss.item(), rel=1e-5, abs=1e-7)


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


def test_one_and_three_views():
    model = build()
    model.alpha = 0.3
    for num_views in (1, 3):
        inputs, data_samples = hybrid_batch(num_views=num_views)
        losses = model.loss(inputs, data_samples)
        assert torch.isfinite(losses['loss_feat'])


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


def test_shape_errors():
    model = build()
    model.alpha = 0.5
    inputs, data_samples = hybrid_batch(num_views=2)
    with pytest.raises(ValueError, match=r'\(V \+ 1\) \* N'):
        model.loss(inputs[:-1], data_samples)
    with pytest.raises(ValueError, match=r'\(V \+ 1\) \* N'):
        model.loss(inputs[:4], data_samples)  # no uniform views at all
    with pytest.raises(ValueError, match='2N'):
        model.loss(inputs, data_samples[:-1])


def test_psc_num_classes_mismatch():
    cfg = model_cfg('PSCHead')
    cfg['feat_head']['num_classes'] = NUM_CLASSES + 1
    with pytest.raises(ValueError, match=r'feat_head.num_classes=5.*'
                       r'head.num_classes=4'):
        MODELS.build(cfg)


@pytest.mark.parametrize('feat_head', ['SupConHead', 'PSCHead'])
@pytest.mark.parametrize('uniform,balanced,bad', [
    ([0, 7, 1, 1], [0, 1, 2, 3], 7),
    ([0, 1, 1, 1], [0, 1, 4, 3], 4),
    ([0, 1, -1, 1], [0, 1, 2, 3], -1),
])
def test_label_out_of_range(feat_head, uniform, balanced, bad):
    model = build(feat_head)
    model.alpha = 0.5
    inputs, _ = hybrid_batch()
    with pytest.raises(ValueError, match=rf'label {bad} is out of range.*'
                       r'num_classes=4'):
        model.loss(inputs, samples(uniform) + samples(balanced))


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
    assert torch.equal(hybrid.extract_feat(images)[0],
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


def test_train_step_on_collated_hybrid_batch():
    """The data contract: HybridPairDataset items -> pseudo_collate ->
    HybridDataPreprocessor -> HybridClassifier.loss."""
    model = build('SupConHead')
    model.alpha = 0.75
    items = []
    for i in range(4):
        items.append(
            dict(
                inputs=[
                    torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
                    for _ in range(3)
                ],
                data_samples=[
                    DataSample().set_gt_label(i % 2),
                    DataSample().set_gt_label(3 - i % 2)
                ]))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.head.fc.weight.detach().clone()
    log_vars = model.train_step(pseudo_collate(items), optim)
    assert {'loss', 'loss_feat', 'loss_cls'} <= set(log_vars)
    assert log_vars['loss'].item() == pytest.approx(
        log_vars['loss_feat'].item() + log_vars['loss_cls'].item(), rel=1e-6)
    assert not torch.equal(before, model.head.fc.weight)


def test_is_image_classifier_subclass():
    from mmpretrain.models import ImageClassifier
    assert issubclass(HybridClassifier, ImageClassifier)
