"""CifarResNet: published sizes, shapes, option-A shortcuts, errors."""
import logging
import re

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.backbones import CifarResNet


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def quiet_init_log():
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def test_resnet32_size_and_feature():
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=32),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    # He et al. 2016, Table 6: ResNet-32 has 0.46 M parameters.
    assert abs(num_params(model) - 0.46e6) <= 0.01e6
    feats = model.extract_feat(torch.randn(2, 3, 32, 32))
    assert isinstance(feats, tuple) and len(feats) == 1
    assert feats[0].shape == (2, 64)


@pytest.mark.parametrize('depth,published_millions', [(20, 0.27), (44, 0.66),
                                                      (56, 0.85), (110, 1.7)])
def test_published_depths_build(depth, published_millions):
    backbone = CifarResNet(depth=depth)
    assert backbone.blocks_per_stage == (depth - 2) // 6
    # Sizes of He et al. 2016, Table 6 (given to two digits).
    assert num_params(backbone) == pytest.approx(
        published_millions * 1e6, rel=0.02)
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth - 1  # plus the classifier layer = depth


def test_stage_shapes_and_out_indices():
    backbone = CifarResNet(depth=20, out_indices=(0, 1, 2))
    outs = backbone(torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 32), (2, 32, 16, 16),
                                              (2, 64, 8, 8)]
    assert CifarResNet(
        depth=8, out_indices=(-1, ))(torch.randn(1, 3, 32,
                                                 32))[0].shape == (1, 64, 8, 8)


def test_option_a_shortcut_has_no_parameters():
    backbone = CifarResNet(depth=8)
    # depth 8: one block per stage; conv/bn parameters only.
    expected = (3 * 9 * 16 + 2 * 16)  # stem
    for cin, cout in ((16, 16), (16, 32), (32, 64)):
        expected += cin * 9 * cout + cout * 9 * cout + 4 * cout
    assert num_params(backbone) == expected
    shortcut = backbone.layer2[0].shortcut
    x = torch.randn(1, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (1, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, :8]) == 0
    assert torch.count_nonzero(y[:, 24:]) == 0


def test_kaiming_normal_init():
    backbone = CifarResNet(depth=56)
    backbone.init_weights()
    weights = torch.cat([
        m.weight.flatten() for m in backbone.modules()
        if isinstance(m, nn.Conv2d) and m.weight.shape[1] == 64
    ])
    # He normal with fan-in 64 * 3 * 3: std = sqrt(2 / 576).
    assert weights.std().item() == pytest.approx((2 / 576)**0.5, rel=0.03)
    assert weights.mean().item() == pytest.approx(0.0, abs=2e-3)


def test_frozen_stages_and_norm_eval():
    backbone = CifarResNet(depth=8, frozen_stages=1, norm_eval=True)
    backbone.train()
    assert not backbone.conv1.weight.requires_grad
    assert not any(p.requires_grad for p in backbone.layer1.parameters())
    assert all(p.requires_grad for p in backbone.layer2.parameters())
    assert not backbone.layer2[0].norm1.training


def test_in_channels():
    out = CifarResNet(depth=8, in_channels=1)(torch.randn(1, 1, 32, 32))
    assert out[0].shape == (1, 64, 8, 8)


@pytest.mark.parametrize('depth', [31, 33, 2, 0, -4, 32.0, True])
def test_bad_depth(depth):
    with pytest.raises(
            ValueError,
            match=rf'CifarResNet: depth={depth!r} is not allowed; '
            r'it must be 6n \+ 2 with n >= 1'):
        CifarResNet(depth=depth)


def test_bad_depth_at_build():
    with pytest.raises(ValueError, match='depth=51'):
        MODELS.build(dict(type='CifarResNet', depth=51))


@pytest.mark.parametrize('out_indices', [(3, ), (0, -4), (), ('2', ),
                                         (1.0, ), 3, None])
def test_bad_out_indices(out_indices):
    with pytest.raises(
            ValueError,
            match=rf'CifarResNet: out_indices='
            rf'{re.escape(repr(out_indices))} is not allowed; it '
            r'must be a stage index .*0, 1, 2.*-3, -2, -1.* or a '
            r'non-empty sequence of them'):
        CifarResNet(depth=8, out_indices=out_indices)


@pytest.mark.parametrize('frozen_stages', [4, -2, 1.0, None])
def test_bad_frozen_stages(frozen_stages):
    with pytest.raises(
            ValueError,
            match=rf'CifarResNet: frozen_stages={frozen_stages!r} '
            r'is not allowed; it must be .*-1.*3'):
        CifarResNet(depth=8, frozen_stages=frozen_stages)


def test_bad_in_channels():
    with pytest.raises(
            ValueError,
            match='CifarResNet: in_channels=0 is not allowed; it '
            'must be an integer >= 1'):
        CifarResNet(depth=8, in_channels=0)
