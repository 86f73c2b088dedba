"""BCLHead: projection, prototypes made from the classifier's weight, the
loss it hands them to, errors, registry."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.heads import BCLHead
from mmlt_hybrid.models.losses import BalancedContrastiveLoss

NUM_CLASSES = 5
IN_CHANNELS = 16


def small_head(**kwargs):
    torch.manual_seed(0)
    cfg = dict(
        num_classes=NUM_CLASSES,
        in_channels=IN_CHANNELS,
        hid_channels=24,
        out_channels=8)
    cfg.update(kwargs)
    return BCLHead(**cfg)


def batch(num_rows=7, seed=1):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(num_rows, IN_CHANNELS, generator=gen)
    labels = torch.tensor([0, 1, 1, 2, 0, 4, 1])[:num_rows]
    return feats, labels


def test_default_structure_is_bcl():
    head = MODELS.build(dict(type='BCLHead', num_classes=10))
    assert isinstance(head, BCLHead)
    for mlp in (head.projector, head.prototype_projector):
        layers = list(mlp)
        assert [type(m) for m in layers
                ] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
        assert (layers[0].in_features, layers[0].out_features) == (64, 512)
        assert layers[3].out_features == 128
    assert isinstance(head.loss_module, BalancedContrastiveLoss)
    assert head.loss_module.temperature == 0.1
    assert head.min_rows_per_step == 1 and head.rows_across_ranks


def test_needs_classifier_weight():
    assert BCLHead.needs_classifier_weight is True
    assert small_head().needs_classifier_weight is True


def test_proto_hid_channels():
    head = small_head(proto_hid_channels=6)
    assert head.prototype_projector[0].out_features == 6
    assert head.projector[0].out_features == 24
    with pytest.raises(ValueError, match='proto_hid_channels=0'):
        small_head(proto_hid_channels=0)
    with pytest.raises(ValueError, match='num_classes=1 is not allowed'):
        small_head(num_classes=1)


def test_shapes_and_unit_length():
    head = small_head()
    feats, _ = batch()
    weight = torch.randn(NUM_CLASSES, IN_CHANNELS)
    z = head((feats, ))
    prototypes = head.prototypes(weight)
    assert z.shape == (7, 8) and prototypes.shape == (NUM_CLASSES, 8)
    torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(NUM_CLASSES))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(7))


def test_loss_is_the_loss_of_embeddings_and_prototypes():
    head = small_head(
        loss=dict(type='BalancedContrastiveLoss', temperature=0.3))
    feats, labels = batch()
    weight = torch.randn(NUM_CLASSES, IN_CHANNELS)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    losses = head.loss(feats, samples, weight)
    assert set(losses) == {'loss'}
    expected = BalancedContrastiveLoss(temperature=0.3)(
        head(feats), labels, head.prototypes(weight))
    assert losses['loss'].item() == pytest.approx(expected.item(), rel=1e-6)
    # Labels as a tensor give the same.
    assert head.loss(feats, labels, weight)['loss'].item() == pytest.approx(
        expected.item(), rel=1e-6)


def test_gradient_reaches_the_classifier_weight():
    head = small_head()
    feats, labels = batch()
    weight = nn.Parameter(torch.randn(NUM_CLASSES, IN_CHANNELS))
    loss = head.loss(feats, labels, weight)['loss']
    loss.backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    assert head.prototype_projector[0].weight.grad.abs().sum() > 0
    assert head.projector[0].weight.grad.abs().sum() > 0
    # The prototypes, hence the loss, depend on the weight (not through a
    # shift common to all classes: the BatchNorm over the classes removes
    # that).
    other = head.loss(feats, labels, torch.randn_like(weight))['loss']
    assert other.item() != pytest.approx(loss.item())
    # The caller may detach it.
    weight.grad = None
    head.loss(feats, labels, weight.detach())['loss'].backward()
    assert weight.grad is None


@pytest.mark.parametrize('shape', [(NUM_CLASSES + 1, IN_CHANNELS),
                                   (NUM_CLASSES, IN_CHANNELS + 2),
                                   (IN_CHANNELS, NUM_CLASSES),
                                   (NUM_CLASSES * IN_CHANNELS, )])
def test_wrong_weight_shape_is_refused(shape):
    head = small_head()
    feats, labels = batch()
    with pytest.raises(ValueError) as info:
        head.loss(feats, labels, torch.randn(*shape))
    message = str(info.value)
    assert 'BCLHead: classifier_weight' in message
    assert f'({NUM_CLASSES}, {IN_CHANNELS})' in message
    assert f'got {tuple(shape)}' in message


def test_double_precision_head():
    head = small_head().double()
    feats, labels = batch()
    loss = head.loss(
        feats.double(), labels,
        torch.randn(NUM_CLASSES, IN_CHANNELS, dtype=torch.float64))['loss']
    assert loss.dtype == torch.float64 and torch.isfinite(loss)
