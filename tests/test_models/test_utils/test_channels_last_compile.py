"""The hybrid model with channels-last images and under ``torch.compile``.

mmengine compiles ``model.train_step`` when a config sets ``compile``; the
test compiles it the same way with TorchDynamo's ``eager`` backend (the
graph capture and its breaks, without the slow code generation of inductor,
which a one-epoch CPU run through tools/train.py with ``compile=True``
exercised when this was written). Both must give the loss of the plain
model.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.utils import HybridDataPreprocessor

N = 6
REPO = Path(__file__).resolve().parents[3]


def _model(**preprocessor):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='HybridClassifier',
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=64),
            feat_head=dict(type='SupConHead', out_channels=8),
            data_preprocessor=dict(
                type='HybridDataPreprocessor',
                mean=[120., 110., 100.],
                std=[60., 60., 60.],
                num_views=2,
                **preprocessor)))
    model.alpha = 0.5
    return model


def _batch(size=8):
    g = torch.Generator().manual_seed(1)
    images = torch.randint(
        0, 256, (2, N, 3, size, size), dtype=torch.uint8, generator=g)
    return dict(
        inputs=dict(views=[images[0]], balanced=images[1]),
        data_samples=dict(
            uniform=[DataSample().set_gt_label(k % 3) for k in range(N)],
            balanced=[DataSample().set_gt_label(k % 3) for k in range(N)]))


def _step(model, train_step=None):
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    return (train_step or model.train_step)(_batch(), wrapper)


def test_channels_last_images_and_same_loss():
    pre = HybridDataPreprocessor(
        mean=[0., 0., 0.], std=[1., 1., 1.], num_views=2, channels_last=True)
    out = pre(copy.deepcopy(_batch()), training=True)
    for images in out['inputs']['views'] + [out['inputs']['balanced']]:
        assert images.is_contiguous(memory_format=torch.channels_last)
        assert not images.is_contiguous()
    plain = _step(_model())
    last = _step(_model(channels_last=True))
    for key in ('loss_feat', 'loss_cls'):
        assert torch.allclose(last[key], plain[key], rtol=1e-4, atol=1e-5)


def test_channels_last_same_losses_over_steps_with_the_shipped_transforms():
    """Three SGD steps with the CIFAR-LT configs' batch transforms (drawn per
    step, the same draws in both layouts): the losses of every step and the
    weights after agree within float tolerance; the configs use it."""
    cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets/cifar10lt.py'))
    assert cfg.data_preprocessor.channels_last is True
    transforms = cfg.data_preprocessor.batch_transforms
    runs = {}
    for layout in (False, True):
        model = _model(channels_last=layout, batch_transforms=transforms)
        # lr 0.01: at 0.1 this tiny SupCon model is chaotic enough that a
        # one-ulp difference of the first step grows ~100x a step (2e-4 in
        # the third loss on one thread), a tolerance test of nothing
        wrapper = OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
        hub = MessageHub.get_instance(f'channels_last_{layout}')
        losses = []
        for it in range(3):
            hub.update_info('seed', 0)
            hub.update_info('epoch', 0)
            hub.update_info('iter', it)
            out = model.train_step(_batch(32), wrapper)
            losses.append(torch.stack([out['loss_feat'], out['loss_cls']]))
        runs[layout] = (torch.stack(losses), model.state_dict())
    (plain, plain_weights), (last, last_weights) = runs[False], runs[True]
    assert not torch.equal(plain[0], plain[2])  # the steps trained
    # the first step: the same to float rounding
    torch.testing.assert_close(last[0], plain[0], rtol=1e-6, atol=1e-6)
    # float32 sums in another order; SGD with momentum carries the
    # differences from step to step
    torch.testing.assert_close(last, plain, rtol=1e-3, atol=1e-5)
    for key, value in plain_weights.items():
        torch.testing.assert_close(
            last_weights[key], value, rtol=1e-3, atol=1e-4)


def test_channels_last_must_be_a_bool():
    with pytest.raises(TypeError, match='channels_last=1'):
        HybridDataPreprocessor(channels_last=1)


def test_compiled_train_step_gives_the_eager_loss():
    torch._dynamo.reset()
    plain = _step(_model())
    model = _model()
    compiled = torch.compile(model.train_step, backend='eager')
    losses = _step(model, compiled)
    for key in ('loss_feat', 'loss_cls'):
        assert torch.allclose(losses[key], plain[key], rtol=1e-5, atol=1e-6)
