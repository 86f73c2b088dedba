"""SupConHead and PSCHead: projection, one label per feature row,
prototypes, errors."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models import heads
from mmlt_hybrid.models.heads import PSCHead, SupConHead
from mmlt_hybrid.models.heads.projection_head import ProjectionHead


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def supcon_value(z, labels, tau):
    """SupCon L_out written with per-anchor Python loops."""
    z, y = z.tolist(), labels.tolist()
    total, count = 0.0, 0
    for i in range(len(z)):
        sims = [
            sum(a * b for a, b in zip(z[i], z[k])) / tau
            for k in range(len(z))
        ]
        others = [k for k in range(len(z)) if k != i]
        positives = [k for k in others if y[k] == y[i]]
        if not positives:
            continue
        log_denominator = math.log(sum(math.exp(sims[k]) for k in others))
        total += -sum(sims[p] - log_denominator
                      for p in positives) / len(positives)
        count += 1
    return total / count if count else 0.0


def psc_value(z, labels, prototypes, tau):
    """PSC loss (negatives-only denominator) with Python loops."""
    z, y, p = z.tolist(), labels.tolist(), prototypes.tolist()
    total = 0.0
    for i, row in enumerate(z):
        dots = [sum(a * b for a, b in zip(row, q)) / tau for q in p]
        negatives = sum(math.exp(d) for j, d in enumerate(dots) if j != y[i])
        total += -(dots[y[i]] - math.log(negatives))
    return total / len(z)


def test_supcon_head_structure_and_forward():
    head = MODELS.build(dict(type='SupConHead', in_channels=64))
    layers = list(head.projector)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear]
    assert layers[0].in_features == 64 and layers[0].out_features == 64
    assert layers[2].out_features == 128
    feats = torch.randn(5, 64)
    z = head((feats, ))
    assert z.shape == (5, 128)
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-6)
    # The tuple's last item is the one used.
    assert torch.equal(head((torch.randn(5, 64), feats)), z)
    assert torch.equal(head(feats), z)


def test_hidden_width_and_bn_option():
    head = SupConHead(
        in_channels=8, hid_channels=32, out_channels=4, with_bn=True)
    assert [type(m) for m in head.projector
            ] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head.projector[0].out_features == 32
    assert head(torch.randn(3, 8)).shape == (3, 4)


def test_supcon_head_loss_takes_one_label_per_row():
    torch.manual_seed(0)
    head = SupConHead(
        in_channels=6,
        out_channels=5,
        loss=dict(type='SupConLoss', temperature=0.2))
    # Eight rows with their own labels; the head knows nothing of views.
    row_labels = torch.tensor([0, 1, 2, 1, 2, 0, 3, 1])
    feats = torch.randn(8, 6)
    loss = head.loss((feats, ), samples(row_labels))
    assert set(loss) == {'loss'}
    z = head(feats).double()
    expected = supcon_value(z, row_labels, 0.2)
    assert loss['loss'].item() == pytest.approx(expected, rel=1e-5)
    # The labels are matched to the rows in order.
    shuffled = row_labels[torch.tensor([1, 0, 2, 3, 4, 5, 6, 7])]
    assert abs(supcon_value(z, shuffled, 0.2) - expected) > 1e-3
    assert head.loss(feats, samples(shuffled))['loss'].item() == \
        pytest.approx(supcon_value(z, shuffled, 0.2), rel=1e-5)
    # Labels may be given as a tensor too (standalone use).
    assert head.loss(feats, row_labels)['loss'].item() == pytest.approx(
        expected, rel=1e-5)


def test_projection_head_has_its_own_module():
    # Importable from the package as before, and, as before, a base class
    # that configs do not name.
    assert heads.ProjectionHead is ProjectionHead
    assert issubclass(SupConHead, ProjectionHead)
    assert issubclass(PSCHead, ProjectionHead)
    assert MODELS.get('ProjectionHead') is None


@pytest.mark.parametrize('make', [
    lambda: SupConHead(in_channels=6, out_channels=5),
    lambda: PSCHead(num_classes=4, in_channels=6, out_channels=5),
])
def test_loss_is_forward_then_get_loss(make):
    # As mmpretrain's ClsHead: loss(feats) = _get_loss(forward(feats)).
    torch.manual_seed(3)
    head = make()
    feats, labels = torch.randn(6, 6), torch.tensor([0, 1, 1, 3, 0, 2])
    z = head(feats)
    from_z = head._get_loss(z, samples(labels))
    assert set(from_z) == {'loss'}
    assert torch.equal(
        head.loss((feats, ), samples(labels))['loss'], from_z['loss'])
    # _get_loss sees only the embeddings: shuffled rows give another loss.
    assert not torch.equal(
        head._get_loss(z.flip(0), samples(labels))['loss'], from_z['loss'])


def test_row_labels():
    labels = ProjectionHead.row_labels(samples([3, 0, 2]))
    assert labels.tolist() == [3, 0, 2]
    assert ProjectionHead.row_labels(torch.tensor([[1],
                                                   [4]])).tolist() == [1, 4]


def test_supcon_head_loss_backpropagates():
    head = SupConHead(in_channels=6, out_channels=5)
    feats = torch.randn(6, 6, requires_grad=True)
    head.loss(feats, samples([0, 0, 1, 1, 2, 0]))['loss'].backward()
    assert feats.grad.abs().sum() > 0
    assert head.projector[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize('make', [
    lambda: SupConHead(in_channels=4),
    lambda: PSCHead(num_classes=3, in_channels=4),
])
def test_one_label_per_row_required(make):
    head = make()
    # N samples for V * N rows is no longer expanded: the caller repeats the
    # labels for its views.
    with pytest.raises(
            ValueError,
            match=r'one label per row of features; got features '
            r'\(6, 128\) and labels \(3,\)'):
        head.loss(torch.randn(6, 4), samples([0, 1, 2]))


def test_wrong_feature_width():
    with pytest.raises(ValueError, match='in_channels'):
        SupConHead(in_channels=4)(torch.randn(2, 5))


def test_bad_channels():
    with pytest.raises(
            ValueError,
            match='SupConHead: out_channels=0 is not allowed; it '
            'must be an integer >= 1'):
        SupConHead(out_channels=0)
    with pytest.raises(
            ValueError, match=r'PSCHead: hid_channels=2\.5 is not allowed'):
        PSCHead(num_classes=3, hid_channels=2.5)
    with pytest.raises(ValueError, match='temperature'):
        MODELS.build(
            dict(
                type='SupConHead',
                loss=dict(type='SupConLoss', temperature=0.0)))


def test_psc_head_prototypes_and_loss():
    torch.manual_seed(1)
    head = MODELS.build(
        dict(
            type='PSCHead',
            num_classes=4,
            in_channels=6,
            out_channels=5,
            loss=dict(type='PSCLoss', temperature=0.5)))
    assert isinstance(head.prototypes, nn.Parameter)
    assert head.prototypes.shape == (4, 5)
    assert 'prototypes' in head.state_dict()
    assert any(p is head.prototypes for p in head.parameters())

    row_labels = torch.tensor([3, 0, 0, 1, 3, 2])
    feats = torch.randn(6, 6)
    loss = head.loss((feats, ), samples(row_labels))['loss']
    expected = psc_value(
        head(feats).double(), row_labels,
        F.normalize(head.prototypes.detach().double(), dim=1), 0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert head.loss(feats, row_labels)['loss'].item() == pytest.approx(
        expected, rel=1e-5)
    loss.backward()
    assert head.prototypes.grad.abs().sum() > 0
    assert head.projector[2].weight.grad.abs().sum() > 0


def test_psc_head_prototypes_are_normalised_in_the_loss():
    head = PSCHead(num_classes=3, in_channels=4, out_channels=4)
    feats, labels = torch.randn(3, 4), torch.tensor([0, 1, 2])
    before = head.loss(feats, labels)['loss'].item()
    with torch.no_grad():
        head.prototypes.mul_(7.0)  # scale does not matter
    assert head.loss(feats, labels)['loss'].item() == pytest.approx(
        before, rel=1e-5)


def test_psc_head_loss_with_every_class_in_the_rows():
    # Labels 0 and C - 1 (the range ends) and the sampled-negatives variant
    # with all C - 1 negatives, which equals the full denominator.
    torch.manual_seed(2)
    head = PSCHead(
        num_classes=4,
        in_channels=4,
        out_channels=3,
        loss=dict(type='PSCLoss', temperature=0.3))
    feats, labels = torch.randn(5, 4), torch.tensor([0, 3, 1, 2, 3])
    expected = psc_value(
        head(feats).double(), labels,
        F.normalize(head.prototypes.detach().double(), dim=1), 0.3)
    assert head.loss(feats, samples(labels))['loss'].item() == \
        pytest.approx(expected, rel=1e-5)
    head.loss_module = MODELS.build(
        dict(type='PSCLoss', temperature=0.3, num_negatives=3))
    assert head.loss(feats, labels)['loss'].item() == pytest.approx(
        expected, rel=1e-5)


def test_psc_head_bad_build():
    with pytest.raises(
            ValueError,
            match=r'PSCHead: loss.num_negatives=5 is not allowed '
            r'with num_classes=5; it must be <= num_classes - 1 '
            r'= 4 \(or None'):
        MODELS.build(
            dict(
                type='PSCHead',
                num_classes=5,
                loss=dict(type='PSCLoss', num_negatives=5)))
    assert PSCHead(
        num_classes=5,
        loss=dict(type='PSCLoss',
                  num_negatives=4)).loss_module.num_negatives == 4
    for bad in (1, 3.0, True):
        with pytest.raises(
                ValueError,
                match=rf'PSCHead: num_classes={bad!r} is not '
                'allowed; it must be an integer >= 2'):
            PSCHead(num_classes=bad)
    with pytest.raises(ValueError, match='temperature'):
        PSCHead(num_classes=3, loss=dict(type='PSCLoss', temperature=-0.1))
