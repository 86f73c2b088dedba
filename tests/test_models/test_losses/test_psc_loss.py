"""PSCLoss against a brute-force per-row reference (plain Python); sampled
negatives from the step generator inside a training loop."""
import math
import uuid

import pytest
import torch
import torch.nn.functional as F
from conftest import NoReadBack
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.losses import PSCLoss


@pytest.fixture(autouse=True)
def hub():
    """A fresh message hub without 'iter' (outside a training loop, as the
    tests that seed torch's global generator need), current for the test."""
    name = f'test_psc_loss_{uuid.uuid4().hex}'
    instance = MessageHub.get_instance(name)
    yield instance
    MessageHub._instance_dict.pop(name, None)


def psc_reference(features,
                  labels,
                  prototypes,
                  tau,
                  include_positive=False,
                  negatives=None):
    """Mean over rows of -log(exp(z.p_y/tau) / sum_j exp(z.p_j/tau)).

    The sum runs over the negatives j != y (or the given per-row list of
    negative classes), plus y itself when ``include_positive``.
    """
    z = features.tolist()
    p = prototypes.tolist()
    y = labels.tolist()
    num_classes = len(p)
    total = 0.0
    for i, row in enumerate(z):
        dots = [
            sum(a * b for a, b in zip(row, p[j])) / tau
            for j in range(num_classes)
        ]
        if negatives is None:
            classes = [j for j in range(num_classes) if j != y[i]]
        else:
            classes = list(negatives[i])
        if include_positive:
            classes.append(y[i])
        denominator = 0.0
        for j in classes:
            denominator += math.exp(dots[j])
        total += -math.log(math.exp(dots[y[i]]) / denominator)
    return total / len(z)


def unit_rows(num_rows, dim, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(
        torch.randn(num_rows, dim, generator=gen, dtype=dtype), dim=1)


CASES = {
    # name: (labels of the N images, V, C)
    'two_views_repeated_labels': ([0, 1, 1, 2, 0, 3, 1, 2], 2, 5),
    'one_view': ([4, 0, 2, 2, 1], 1, 5),
    'single_class_batch': ([3, 3, 3], 2, 4),
    'two_classes': ([0, 1, 1], 1, 2),
}


@pytest.mark.parametrize('denominator', ['negatives', 'all'])
@pytest.mark.parametrize('tau', [1.0, 0.1, 0.07])
@pytest.mark.parametrize('case', sorted(CASES))
def test_matches_reference_float64(case, tau, denominator):
    image_labels, num_views, num_classes = CASES[case]
    labels = torch.tensor(image_labels).repeat(num_views)
    z = unit_rows(labels.numel(), 6, seed=len(case))
    protos = unit_rows(num_classes, 6, seed=100 + len(case))
    loss = PSCLoss(temperature=tau, denominator=denominator)(z, labels, protos)
    expected = psc_reference(
        z, labels, protos, tau, include_positive=denominator == 'all')
    assert loss.item() == pytest.approx(expected, abs=1e-5, rel=1e-5)


def test_default_is_negatives_only():
    # Published form: the positive is not in the denominator, so the loss
    # can be negative (well-separated rows) unlike a cross-entropy.
    protos = torch.eye(3, dtype=torch.float64)
    z = protos.clone()
    labels = torch.arange(3)
    loss = PSCLoss(temperature=0.1)(z, labels, protos)
    # -log(e^10 / (2 e^0)) = -(10 - log 2)
    assert loss.item() == pytest.approx(-(10 - math.log(2)), rel=1e-9)
    softmax = PSCLoss(temperature=0.1, denominator='all')(z, labels, protos)
    assert softmax.item() == pytest.approx(
        F.cross_entropy(z @ protos.t() / 0.1, labels).item(), rel=1e-9)


def test_float32_matches_reference():
    labels = torch.tensor([0, 5, 9, 9, 3, 1]).repeat(2)
    z = unit_rows(12, 16, seed=1)
    protos = unit_rows(10, 16, seed=2)
    loss = PSCLoss(temperature=0.07)(z.float(), labels, protos.float())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        psc_reference(z, labels, protos, 0.07), abs=1e-5, rel=1e-5)


def test_large_logits_are_stable():
    labels = torch.tensor([0, 1, 2])
    z = unit_rows(3, 4, seed=3)
    protos = unit_rows(4, 4, seed=4)
    loss = PSCLoss(temperature=0.005)(z.float(), labels, protos.float())
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(
        psc_reference(z, labels, protos, 0.005), rel=1e-4)


@pytest.mark.parametrize('denominator', ['negatives', 'all'])
def test_sampled_negatives_match_reference(denominator):
    labels = torch.tensor([0, 3, 3, 7, 9, 1])
    z = unit_rows(6, 8, seed=5)
    protos = unit_rows(10, 8, seed=6)
    loss_fn = PSCLoss(
        temperature=0.2, denominator=denominator, num_negatives=3)
    torch.manual_seed(123)
    loss = loss_fn(z, labels, protos)
    torch.manual_seed(123)
    negatives = PSCLoss.sample_negatives(labels, 10, 3).tolist()
    for row, label in zip(negatives, labels.tolist()):
        assert len(set(row)) == 3 and label not in row
        assert all(0 <= j < 10 for j in row)
    expected = psc_reference(
        z,
        labels,
        protos,
        0.2,
        include_positive=denominator == 'all',
        negatives=negatives)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_sampled_negatives_cover_every_negative():
    # Over many draws every negative class appears, the positive never.
    labels = torch.zeros(2000, dtype=torch.long)
    torch.manual_seed(0)
    drawn = PSCLoss.sample_negatives(labels, 6, 2)
    assert set(drawn.flatten().tolist()) == {1, 2, 3, 4, 5}


def test_all_negatives_sampled_equals_full():
    labels = torch.tensor([0, 2, 4, 4, 1])
    z = unit_rows(5, 6, seed=8)
    protos = unit_rows(5, 6, seed=9)
    full = PSCLoss(temperature=0.3)(z, labels, protos)
    sampled = PSCLoss(temperature=0.3, num_negatives=4)(z, labels, protos)
    assert sampled.item() == pytest.approx(full.item(), rel=1e-12)


@pytest.mark.parametrize('denominator', ['negatives', 'all'])
def test_gradcheck(denominator):
    labels = torch.tensor([0, 1, 1, 3, 0, 2])
    raw_z = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    raw_p = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    loss_fn = PSCLoss(temperature=0.5, denominator=denominator)

    def func(x, p):
        return loss_fn(F.normalize(x, dim=1), labels, F.normalize(p, dim=1))

    assert torch.autograd.gradcheck(func, (raw_z, raw_p), eps=1e-6, atol=1e-5)


def test_gradcheck_sampled_negatives():
    labels = torch.tensor([0, 1, 4, 3])
    raw_z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    raw_p = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    loss_fn = PSCLoss(temperature=0.5, num_negatives=2)

    def func(x, p):
        torch.manual_seed(7)  # the same negatives at every evaluation
        return loss_fn(F.normalize(x, dim=1), labels, F.normalize(p, dim=1))

    assert torch.autograd.gradcheck(func, (raw_z, raw_p), eps=1e-6, atol=1e-5)


def test_build_from_registry():
    loss = MODELS.build(dict(type='PSCLoss', temperature=1.0))
    assert isinstance(loss, PSCLoss) and loss.temperature == 1.0
    assert loss.denominator == 'negatives' and loss.num_negatives is None


@pytest.mark.parametrize('tau', [0, -1.0, float('nan'), float('inf')])
def test_bad_temperature(tau):
    with pytest.raises(ValueError, match='temperature'):
        PSCLoss(temperature=tau)


def test_bad_options():
    with pytest.raises(
            ValueError,
            match="PSCLoss: denominator='positives' is not "
            r"allowed; it must be one of \('negatives', 'all'\)"):
        PSCLoss(denominator='positives')
    for bad in (0, 2.5, True):
        with pytest.raises(
                ValueError,
                match=rf'PSCLoss: num_negatives={bad!r} is not '
                'allowed; it must be None or an integer >= 1'):
            PSCLoss(num_negatives=bad)
    with pytest.raises(
            ValueError,
            match='PSCLoss: loss_weight=nan is not allowed; it '
            'must be a finite number'):
        PSCLoss(loss_weight=float('nan'))


def test_num_negatives_larger_than_available():
    # Used on its own, the loss learns C from the prototypes it is given.
    loss = PSCLoss(num_negatives=4)
    z, protos = unit_rows(2, 3, 0), unit_rows(4, 3, 1)
    with pytest.raises(
            ValueError,
            match=r'PSCLoss: .*num_negatives=4 .*'
            r'got prototypes \(4, 3\)'):
        loss(z, torch.tensor([0, 1]), protos)
    assert torch.isfinite(
        PSCLoss(num_negatives=3)(z, torch.tensor([0, 1]), protos))


def test_boundary_labels_match_reference():
    # Labels are documented to lie in [0, C); the first and last class are
    # used as they are (no off-by-one in the gather or the negative mask).
    z, protos = unit_rows(4, 3, 0), unit_rows(4, 3, 1)
    labels = torch.tensor([0, 3, 3, 0])
    for denominator in ('negatives', 'all'):
        loss = PSCLoss(
            temperature=0.5, denominator=denominator)(z, labels, protos)
        assert loss.item() == pytest.approx(
            psc_reference(
                z, labels, protos, 0.5, include_positive=denominator == 'all'),
            rel=1e-9)


def set_step(hub, seed=0, epoch=0, it=0):
    hub.update_info('seed', seed)
    hub.update_info('epoch', epoch)
    hub.update_info('iter', it)


@pytest.mark.parametrize('num_negatives', [None, 2])
def test_labels_are_not_read_back(hub, num_negatives):
    # The label range is checked once before training
    # (ModelDataCheckHook.check_labels), not here: the loss never
    # synchronises with the device.
    set_step(hub, it=3)
    labels = torch.tensor([0, 3, 3, 1])
    z, protos = unit_rows(4, 5, 2), unit_rows(5, 5, 3)
    loss_fn = PSCLoss(temperature=0.5, num_negatives=num_negatives)
    with NoReadBack():
        with pytest.raises(AssertionError, match='read back'):
            int(labels.max())  # the guard works
        loss = loss_fn(z, labels, protos)
    negatives = None if num_negatives is None else \
        PSCLoss.sample_negatives(labels, 5, num_negatives).tolist()
    assert loss.item() == pytest.approx(
        psc_reference(z, labels, protos, 0.5, negatives=negatives), rel=1e-9)


def sampled_case():
    gen = torch.Generator().manual_seed(21)
    labels = torch.randint(0, 20, (64, ), generator=gen)
    return labels, unit_rows(64, 8, 22), unit_rows(20, 8, 23)


def test_sampled_negatives_follow_the_training_step(hub):
    labels, z, protos = sampled_case()
    loss_fn = PSCLoss(temperature=0.2, num_negatives=3)
    set_step(hub, seed=5, epoch=2, it=40)
    torch.manual_seed(0)
    first = loss_fn(z, labels, protos)
    negatives = PSCLoss.sample_negatives(labels, 20, 3)
    # Same iteration: the same negatives and loss, whatever torch's global
    # generator holds, which the draws leave untouched.
    torch.manual_seed(99)
    state = torch.get_rng_state()
    again = loss_fn(z, labels, protos)
    assert torch.equal(torch.get_rng_state(), state)
    assert again.item() == first.item()
    assert torch.equal(PSCLoss.sample_negatives(labels, 20, 3), negatives)
    # And they are the negatives the loss used.
    assert first.item() == pytest.approx(
        psc_reference(z, labels, protos, 0.2, negatives=negatives.tolist()),
        rel=1e-9)
    for row, label in zip(negatives.tolist(), labels.tolist()):
        assert len(set(row)) == 3 and label not in row
    # The next iteration draws other negatives: another loss.
    hub.update_info('iter', 41)
    later = loss_fn(z, labels, protos)
    assert not torch.equal(PSCLoss.sample_negatives(labels, 20, 3), negatives)
    assert later.item() != first.item()
    # Back at iteration 40 (a resumed run): the first draws again.
    hub.update_info('iter', 40)
    assert loss_fn(z, labels, protos).item() == first.item()


def test_sampled_negatives_outside_a_training_loop_use_torch_rng(hub):
    labels, z, protos = sampled_case()
    assert hub.get_info('iter') is None
    loss_fn = PSCLoss(temperature=0.2, num_negatives=3)
    torch.manual_seed(5)
    a = loss_fn(z, labels, protos)
    b = loss_fn(z, labels, protos)  # the global generator moved on
    torch.manual_seed(5)
    assert loss_fn(z, labels, protos).item() == a.item()
    assert b.item() != a.item()


def test_bad_prototype_shape():
    z, labels = unit_rows(3, 3, 0), torch.tensor([0, 1, 1])
    with pytest.raises(
            ValueError,
            match=r'PSCLoss: prototypes must be '
            r'\(C, d\) with d = 3 .*got prototypes \(4, 5\)'):
        PSCLoss()(z, labels, unit_rows(4, 5, 1))
    with pytest.raises(ValueError, match=r'C >= 2.*got prototypes \(1, 3\)'):
        PSCLoss()(z, torch.tensor([0, 0, 0]), unit_rows(1, 3, 1))
    with pytest.raises(ValueError, match='one label per row of features'):
        PSCLoss()(z, labels[:2], unit_rows(4, 3, 1))
