"""SupConLoss against a brute-force per-anchor reference (plain Python)."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import NoReadBack
from mmpretrain.registry import MODELS

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.losses import SupConLoss


def supcon_reference(features, labels, tau, base_tau=None):
    """SupCon L_out, anchor by anchor, with math.exp and Python sums.

    Anchors without positives are skipped; an empty mean is 0.
    """
    z = features.tolist()
    y = labels.tolist()
    rows = len(z)
    total, count = 0.0, 0
    for i in range(rows):
        positives = [p for p in range(rows) if p != i and y[p] == y[i]]
        if not positives:
            continue
        sims = {}
        for a in range(rows):
            if a != i:
                sims[a] = sum(u * v for u, v in zip(z[i], z[a])) / tau
        denominator = 0.0
        for a in sims:
            denominator += math.exp(sims[a])
        term = 0.0
        for p in positives:
            term += math.log(math.exp(sims[p]) / denominator)
        loss_i = -term / len(positives)
        if base_tau is not None:
            loss_i *= tau / base_tau
        total += loss_i
        count += 1
    return total / count if count else 0.0


def unit_rows(num_rows, dim, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(
        torch.randn(num_rows, dim, generator=gen, dtype=dtype), dim=1)


def views_of(num_images, num_views, dim, seed):
    """Rows of V views of N images, view-major, with the N labels."""
    return unit_rows(num_images * num_views, dim, seed)


CASES = {
    # name: (labels of the N images, number of views V)
    'two_views_repeated_labels': ([0, 1, 1, 2, 0, 3, 1, 2], 2),
    'one_view_repeated_labels': ([0, 1, 1, 2, 0, 3, 1, 2, 2, 0], 1),
    'one_view_anchor_without_positive': ([5, 1, 1, 2, 2, 2, 7], 1),
    'two_views_all_distinct': ([0, 1, 2, 3, 4], 2),
    'single_class_two_views': ([3, 3, 3, 3], 2),
    'single_class_one_view': ([4, 4, 4, 4, 4], 1),
    'three_views': ([0, 1, 0, 2], 3),
}


@pytest.mark.parametrize('tau', [1.0, 0.1, 0.07])
@pytest.mark.parametrize('case', sorted(CASES))
def test_matches_reference_float64(case, tau):
    image_labels, num_views = CASES[case]
    labels = torch.tensor(image_labels).repeat(num_views)
    z = views_of(len(image_labels), num_views, 6, seed=len(case))
    loss = SupConLoss(temperature=tau)(z, labels)
    expected = supcon_reference(z, labels, tau)
    assert loss.item() == pytest.approx(expected, abs=1e-5, rel=1e-5)


@pytest.mark.parametrize('tau', [1.0, 0.07])
def test_matches_reference_float32(tau):
    labels = torch.tensor([0, 1, 2, 1, 0, 0, 3, 2]).repeat(2)
    z64 = unit_rows(16, 32, seed=3)
    loss = SupConLoss(temperature=tau)(z64.float(), labels)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        supcon_reference(z64, labels, tau), abs=1e-5, rel=1e-5)


def test_base_temperature_factor():
    labels = torch.tensor([0, 1, 1, 0, 2, 2])
    z = unit_rows(6, 4, seed=7)
    loss = SupConLoss(temperature=0.1, base_temperature=0.07)(z, labels)
    assert loss.item() == pytest.approx(
        supcon_reference(z, labels, 0.1, base_tau=0.07), rel=1e-6)
    # 0.1 / 0.07 times the unscaled loss.
    plain = SupConLoss(temperature=0.1)(z, labels)
    assert loss.item() == pytest.approx(plain.item() * 0.1 / 0.07, rel=1e-9)


def test_loss_weight():
    labels = torch.tensor([0, 1, 1, 0])
    z = unit_rows(4, 4, seed=1)
    assert SupConLoss(loss_weight=0.5)(z, labels).item() == pytest.approx(
        0.5 * supcon_reference(z, labels, 0.1), rel=1e-6)


def test_anchor_without_positive_is_not_counted():
    # Rows 0 and 1 share a label, row 2 is alone. The mean runs over rows 0
    # and 1 only: with 3 rows counted the value would be 2/3 of this.
    z = unit_rows(3, 5, seed=11)
    labels = torch.tensor([4, 4, 9])
    s = (z @ z.t() / 0.1).tolist()
    loss_0 = -(s[0][1] - math.log(math.exp(s[0][1]) + math.exp(s[0][2])))
    loss_1 = -(s[1][0] - math.log(math.exp(s[1][0]) + math.exp(s[1][2])))
    loss = SupConLoss(temperature=0.1)(z, labels)
    assert loss.item() == pytest.approx((loss_0 + loss_1) / 2, rel=1e-9)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('tau', [0.1, 0.01])
def test_no_positives_gives_exact_zero_and_zero_gradient(dtype, tau):
    # Every anchor is masked out: the loss is 0.0 exactly (not NaN, not a
    # tiny number) and so is every gradient.
    z = unit_rows(5, 8, seed=2, dtype=dtype).requires_grad_()
    loss = SupConLoss(temperature=tau)(z, torch.arange(5))
    assert loss.dtype == dtype
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.isfinite(z.grad).all()
    assert torch.count_nonzero(z.grad) == 0


def supcon_autograd_loop(z, labels, tau):
    """SupCon L_out as a differentiable torch expression built anchor by
    anchor (only anchors with a positive), for gradients."""
    y = labels.tolist()
    terms = []
    for i in range(len(y)):
        others = [a for a in range(len(y)) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            continue
        log_denominator = torch.logsumexp(
            torch.stack([z[i] @ z[a] / tau for a in others]), dim=0)
        terms.append(-sum(z[i] @ z[p] / tau - log_denominator
                          for p in positives) / len(positives))
    return sum(terms) / len(terms)


@pytest.mark.parametrize('num_views', [1, 2])
def test_mixed_valid_and_invalid_anchors_match_loops(num_views):
    # One view: labels 5 and 9 have no positive (2 of 7 anchors masked).
    # Two views: every anchor has its other view as a positive except the
    # labels given to a single row (the last image's views differ).
    if num_views == 1:
        labels = torch.tensor([5, 1, 1, 2, 2, 2, 9])
    else:
        labels = torch.tensor([0, 1, 1, 2, 7, 0, 1, 1, 2, 8])
    raw = torch.randn(
        len(labels),
        6,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(4))
    z = F.normalize(raw, dim=1).requires_grad_()
    loss = SupConLoss(temperature=0.2)(z, labels)
    assert loss.item() == pytest.approx(
        supcon_reference(z.detach(), labels, 0.2), rel=1e-9)
    loss.backward()

    z_ref = z.detach().clone().requires_grad_()
    expected = supcon_autograd_loop(z_ref, labels, 0.2)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-9, atol=1e-12)
    # An anchor without positives still moves as a member of the others'
    # denominators: its gradient is not zero.
    lonely = [
        i for i, y in enumerate(labels.tolist())
        if labels.tolist().count(y) == 1
    ]
    assert lonely and all(z.grad[i].abs().sum() > 0 for i in lonely)


def test_no_value_is_read_back_from_the_tensors():
    labels = torch.tensor([0, 1, 1, 2, 5, 0])
    z = unit_rows(6, 4, seed=8)
    with NoReadBack():
        with pytest.raises(AssertionError, match='read back'):
            bool(labels.any())  # the guard works
        loss = SupConLoss(temperature=0.5)(z, labels)
        no_positive = SupConLoss()(z, torch.arange(6))
    assert loss.item() == pytest.approx(
        supcon_reference(z, labels, 0.5), rel=1e-9)
    assert no_positive.item() == 0.0


def test_single_row_is_zero_not_nan():
    z = unit_rows(1, 8, seed=2).requires_grad_()
    loss = SupConLoss()(z, torch.tensor([0]))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


def test_large_logits_are_stable():
    # tau = 0.01 gives logits up to 100: a naive exp overflows float32.
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    z = unit_rows(6, 3, seed=5)
    loss = SupConLoss(temperature=0.01)(z.float(), labels)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(
        supcon_reference(z, labels, 0.01), rel=1e-4)


def test_gradcheck():
    labels = torch.tensor([0, 1, 1, 2, 0, 3]).repeat(2)  # row 5/11 pair only
    raw = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    loss_fn = SupConLoss(temperature=0.5)

    def func(x):
        return loss_fn(F.normalize(x, dim=1), labels)

    assert torch.autograd.gradcheck(func, (raw, ), eps=1e-6, atol=1e-5)


def test_gradcheck_with_anchor_without_positive():
    labels = torch.tensor([0, 1, 1, 2, 2, 7])
    raw = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    loss_fn = SupConLoss(temperature=0.2, base_temperature=0.07)
    assert torch.autograd.gradcheck(
        lambda x: loss_fn(F.normalize(x, dim=1), labels), (raw, ),
        eps=1e-6,
        atol=1e-5)


def test_half_precision_input_is_computed_in_float32():
    labels = torch.tensor([0, 1, 1, 0])
    z = unit_rows(4, 8, seed=4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = SupConLoss()(z.bfloat16(), labels)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        supcon_reference(z.bfloat16().double(), labels, 0.1), rel=1e-5)


def test_build_from_registry():
    loss = MODELS.build(dict(type='SupConLoss', temperature=0.2))
    assert isinstance(loss, SupConLoss) and loss.temperature == 0.2


@pytest.mark.parametrize('tau', [0, -0.1, float('nan'), float('inf')])
def test_bad_temperature(tau):
    with pytest.raises(ValueError, match='temperature'):
        SupConLoss(temperature=tau)


def test_bad_temperature_type_and_base():
    # One message for every bad value: key, value, what is allowed.
    with pytest.raises(
            ValueError,
            match="SupConLoss: temperature='0.1' is not allowed; "
            'it must be a (finite )?number > 0'):
        SupConLoss(temperature='0.1')
    with pytest.raises(
            ValueError,
            match=r'base_temperature=0\.0 is not allowed; it '
            'must be a (finite )?number > 0'):
        SupConLoss(base_temperature=0.0)
    with pytest.raises(ValueError, match='temperature=-1 is not allowed'):
        MODELS.build(dict(type='SupConLoss', temperature=-1))


@pytest.mark.parametrize('weight', [float('nan'), float('inf'), '1', None])
def test_bad_loss_weight(weight):
    with pytest.raises(
            ValueError,
            match=rf'SupConLoss: loss_weight={weight!r} is not '
            'allowed; it must be a finite number'):
        SupConLoss(loss_weight=weight)


def test_bad_shapes():
    loss = SupConLoss()
    with pytest.raises(
            ValueError,
            match=r'SupConLoss: .*one label per row of features; '
            r'got features \(4, 3\) and labels \(3,\)'):
        loss(unit_rows(4, 3, 0), torch.tensor([0, 1, 2]))
    with pytest.raises(
            ValueError, match=r'features \(M, d\).*got features '
            r'\(4,\)'):
        loss(torch.randn(4), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match='integer labels.*torch.float32'):
        loss(unit_rows(2, 3, 0), torch.tensor([0.0, 1.0]))
