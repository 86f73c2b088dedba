"""LogitAdjustedLoss / BalancedSoftmaxLoss and LogitAdjustedLinearClsHead
against references written as explicit float64 loops (no torch), the
"no counts" error, loading counts into an empty buffer, no host read-back."""
import math
import re

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import load_state_dict
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401

COUNTS = [50, 20, 9, 4, 1]
N, C = 6, len(COUNTS)


def _log_prior(counts):
    total = float(sum(counts))
    return [math.log(c / total) for c in counts]


def ref_loss_and_grad(logits, targets, counts, tau, loss_weight):
    """Mean over rows of -sum_j t_j log softmax(z + tau log prior)_j and its
    gradient w.r.t. the logits, by hand in float64."""
    prior = _log_prior(counts)
    loss, grad = 0.0, []
    for row, target in zip(logits, targets):
        z = [v + tau * p for v, p in zip(row, prior)]
        top = max(z)
        total = sum(math.exp(v - top) for v in z)
        log_softmax = [v - top - math.log(total) for v in z]
        loss += -sum(t * ls for t, ls in zip(target, log_softmax))
        mass = sum(target)
        grad.append([(math.exp(ls) * mass - t) * loss_weight / len(logits)
                     for ls, t in zip(log_softmax, target)])
    return loss_weight * loss / len(logits), grad


def _one_hot(labels):
    return [[1.0 if j == y else 0.0 for j in range(C)] for y in labels]


def _targets(kind, gen):
    labels = torch.randint(0, C, (N, ), generator=gen)
    if kind == 'hard':
        return labels, _one_hot(labels.tolist())
    if kind == 'one-hot':
        onehot = _one_hot(labels.tolist())
        return torch.tensor(onehot, dtype=torch.float64), onehot
    # Mixed soft targets, as Mixup/CutMix make them (rows sum to 1).
    lam = torch.rand(N, 1, generator=gen, dtype=torch.float64)
    other = torch.randint(0, C, (N, ), generator=gen)
    soft = (
        lam * torch.eye(C, dtype=torch.float64)[labels] +
        (1 - lam) * torch.eye(C, dtype=torch.float64)[other])
    return soft, soft.tolist()


@pytest.mark.parametrize('kind', ['hard', 'one-hot', 'mixed'])
@pytest.mark.parametrize('tau', [0.0, 1.0, 2.0])
@pytest.mark.parametrize('loss_weight', [1.0, 0.5])
def test_values_and_gradients_equal_the_reference(kind, tau, loss_weight):
    gen = torch.Generator().manual_seed(int(10 * tau + 3 * loss_weight))
    logits = (3 * torch.randn(N, C, generator=gen,
                              dtype=torch.float64)).requires_grad_()
    target, ref_target = _targets(kind, gen)
    loss_module = MODELS.build(
        dict(
            type='LogitAdjustedLoss',
            tau=tau,
            class_counts=COUNTS,
            loss_weight=loss_weight))
    # As ClsHead._get_loss calls it.
    loss = loss_module(logits, target, avg_factor=N)
    loss.backward()
    ref, ref_grad = ref_loss_and_grad(logits.tolist(), ref_target, COUNTS, tau,
                                      loss_weight)
    assert loss.dim() == 0
    assert abs(loss.item() - ref) < 1e-6
    assert torch.allclose(
        logits.grad,
        torch.tensor(ref_grad, dtype=torch.float64),
        atol=1e-6,
        rtol=0)


def test_float32_scores_match_the_reference():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(N, C, generator=gen)
    labels = torch.randint(0, C, (N, ), generator=gen)
    loss = MODELS.build(dict(type='LogitAdjustedLoss',
                             class_counts=COUNTS))(logits, labels)
    ref, _ = ref_loss_and_grad(logits.double().tolist(),
                               _one_hot(labels.tolist()), COUNTS, 1.0, 1.0)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - ref) < 1e-5


def test_balanced_softmax_is_logit_adjustment_at_tau_1():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(N, C, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, C, (N, ), generator=gen)
    balanced = MODELS.build(
        dict(type='BalancedSoftmaxLoss', class_counts=COUNTS,
             loss_weight=0.7))(logits, labels)
    adjusted = MODELS.build(
        dict(
            type='LogitAdjustedLoss',
            tau=1.0,
            class_counts=COUNTS,
            loss_weight=0.7))(logits, labels)
    ref, _ = ref_loss_and_grad(logits.tolist(), _one_hot(labels.tolist()),
                               COUNTS, 1.0, 0.7)
    # Scaled counts give the same prior: log counts and log prior differ by
    # a constant, which softmax cancels.
    scaled = MODELS.build(
        dict(
            type='BalancedSoftmaxLoss',
            class_counts=[7 * c for c in COUNTS],
            loss_weight=0.7))(logits, labels)
    assert abs(balanced.item() - ref) < 1e-6
    assert abs(adjusted.item() - ref) < 1e-6
    assert abs(scaled.item() - ref) < 1e-6


def test_sample_weights_and_reduction_override():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(N, C, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, C, (N, ), generator=gen)
    loss = MODELS.build(dict(type='LogitAdjustedLoss', class_counts=COUNTS))
    per_row = loss(logits, labels, reduction_override='none')
    refs = [
        ref_loss_and_grad([row], [t], COUNTS, 1.0, 1.0)[0]
        for row, t in zip(logits.tolist(), _one_hot(labels.tolist()))
    ]
    assert per_row.shape == (N, )
    assert torch.allclose(
        per_row, torch.tensor(refs, dtype=torch.float64), atol=1e-6, rtol=0)
    weight = torch.arange(N, dtype=torch.float64)
    summed = loss(logits, labels, weight=weight, reduction_override='sum')
    assert abs(summed.item() - sum(w * r for w, r in zip(range(N), refs))) \
        < 1e-6


def test_as_the_loss_of_an_mmpretrain_head_with_soft_targets():
    head = MODELS.build(
        dict(
            type='LinearClsHead',
            num_classes=C,
            in_channels=4,
            loss=dict(type='LogitAdjustedLoss', class_counts=COUNTS)))
    gen = torch.Generator().manual_seed(4)
    feats = (torch.randn(N, 4, generator=gen), )
    soft, soft_ref = _targets('mixed', gen)
    samples = [DataSample().set_gt_score(s.float()) for s in soft]
    loss = head.loss(feats, samples)['loss']
    logits = head(feats).double().tolist()
    ref, _ = ref_loss_and_grad(logits, soft_ref, COUNTS, 1.0, 1.0)
    assert abs(loss.item() - ref) < 1e-5


def test_forward_reads_nothing_back_to_the_host(monkeypatch):
    loss = MODELS.build(dict(type='LogitAdjustedLoss', class_counts=COUNTS))
    logits = torch.randn(N, C, requires_grad=True)
    labels = torch.randint(0, C, (N, ))

    def refuse(*args, **kwargs):
        raise AssertionError('host read-back in forward')

    for name in ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__float__',
                 '__int__'):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    out = loss(logits, labels, avg_factor=N)
    out.backward()
    monkeypatch.undo()
    assert torch.isfinite(out).item()


@pytest.mark.parametrize('type_', ['LogitAdjustedLoss', 'BalancedSoftmaxLoss'])
def test_no_counts_is_a_clear_error_at_the_first_forward(type_):
    loss = MODELS.build(dict(type=type_))
    assert loss.needs_class_counts
    with pytest.raises(
            ValueError,
            match=rf'{type_}: no class counts.*ClassCountsHook.*'
            r'class_counts=\[\.\.\.\]'):
        loss(torch.randn(2, C), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    'counts',
    [torch.tensor(COUNTS),
     np.array(COUNTS), tuple(COUNTS)])
def test_counts_as_tensor_array_or_tuple_are_the_list(counts):
    loss = MODELS.build(dict(type='LogitAdjustedLoss', class_counts=counts))
    assert loss.class_counts.tolist() == list(COUNTS)
    assert not loss.needs_class_counts


def test_counts_of_another_number_of_classes_are_refused():
    loss = MODELS.build(dict(type='LogitAdjustedLoss', class_counts=COUNTS))
    with pytest.raises(ValueError, match=r'5 classes.*scores have 3'):
        loss(torch.randn(2, 3), torch.tensor([0, 1]))


@pytest.mark.parametrize('bad,error,named', [
    ([3, 0, 2], ValueError, r'class_counts\[1\]=0'),
    ([3, -1], ValueError, r'class_counts\[1\]=-1'),
    ([2.5, 1], ValueError, r'class_counts\[0\]=2.5'),
    ([True, 2], ValueError, r'class_counts\[0\]=True'),
    (torch.tensor([2., 1.]), ValueError, r'class_counts\[0\]=2.0'),
    ([], ValueError, r'class_counts=\[\]'),
    ('abc', TypeError, "class_counts='abc'"),
    (7, TypeError, 'class_counts=7'),
])
def test_bad_counts_are_refused_at_construction(bad, error, named):
    # One message: the key (and class), the value, what is allowed and what
    # to do.
    with pytest.raises(
            error,
            match=rf'LogitAdjustedLoss: {named} is not allowed; '
            r'it must be .*integer >= 1.*give every class a '
            r'training image'):
        MODELS.build(dict(type='LogitAdjustedLoss', class_counts=bad))
    empty = MODELS.build(dict(type='BalancedSoftmaxLoss'))
    with pytest.raises(error, match='BalancedSoftmaxLoss: class_counts'):
        empty.set_class_counts(bad)  # the counts of ClassCountsHook


def test_counts_as_numpy_integers_are_accepted():
    loss = MODELS.build(
        dict(type='LogitAdjustedLoss', class_counts=np.array([3, 1, 2])))
    assert loss.class_counts.tolist() == [3, 1, 2]


@pytest.mark.parametrize('tau', [-1.0, float('nan'), 'one', True])
def test_bad_tau_is_refused(tau):
    with pytest.raises(
            ValueError,
            match=rf'LogitAdjustedLoss: tau={re.escape(repr(tau))}'
            r' is not allowed; it must be a (finite )?number >= 0'):
        MODELS.build(dict(type='LogitAdjustedLoss', tau=tau))
    with pytest.raises(
            ValueError,
            match=rf'LogitAdjustedLinearClsHead: posthoc_tau='
            rf'{re.escape(repr(tau))} is not allowed'):
        MODELS.build(
            dict(
                type='LogitAdjustedLinearClsHead',
                num_classes=C,
                in_channels=4,
                posthoc_tau=tau))


def test_given_counts_do_not_need_the_hook_and_set_counts_fills():
    given = MODELS.build(dict(type='LogitAdjustedLoss', class_counts=COUNTS))
    assert not given.needs_class_counts
    assert given.class_counts.tolist() == COUNTS
    empty = MODELS.build(dict(type='LogitAdjustedLoss'))
    assert empty.class_counts.numel() == 0
    empty.set_class_counts(COUNTS)
    assert empty.class_counts.tolist() == COUNTS
    assert empty.class_counts.dtype == torch.int64


def test_an_empty_buffer_takes_the_checkpoints_counts():
    """A model built for testing has no counts; loading fills them, through
    torch's and mmengine's loaders."""
    trained = MODELS.build(
        dict(
            type='LogitAdjustedLinearClsHead',
            num_classes=C,
            in_channels=4,
            loss=dict(type='LogitAdjustedLoss', class_counts=COUNTS),
            class_counts=COUNTS))
    state = trained.state_dict()
    assert state['class_counts'].tolist() == COUNTS
    assert state['loss_module.class_counts'].tolist() == COUNTS
    for load in (lambda m, s: m.load_state_dict(s),
                 lambda m, s: load_state_dict(m, s, strict=True)):
        fresh = MODELS.build(
            dict(
                type='LogitAdjustedLinearClsHead',
                num_classes=C,
                in_channels=4,
                loss=dict(type='LogitAdjustedLoss')))
        load(fresh, state)
        assert fresh.class_counts.tolist() == COUNTS
        assert fresh.loss_module.class_counts.tolist() == COUNTS


def ref_posthoc_scores(logits, counts, tau):
    prior = _log_prior(counts)
    scores = []
    for row in logits:
        z = [v - tau * p for v, p in zip(row, prior)]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        scores.append([v / sum(e) for v in e])
    return scores


@pytest.mark.parametrize('tau', [0.0, 1.0, 2.0])
def test_posthoc_adjustment_equals_its_reference(tau):
    head = MODELS.build(
        dict(
            type='LogitAdjustedLinearClsHead',
            num_classes=C,
            in_channels=4,
            posthoc_tau=tau,
            class_counts=COUNTS))
    gen = torch.Generator().manual_seed(5)
    feats = (torch.randn(N, 4, generator=gen), )
    logits = head(feats).double().tolist()
    predictions = head.predict(feats)
    ref = ref_posthoc_scores(logits, COUNTS, tau)
    scores = torch.stack([p.pred_score for p in predictions])
    assert torch.allclose(
        scores.double(), torch.tensor(ref, dtype=torch.float64), atol=1e-6)
    labels = [p.pred_label.item() for p in predictions]
    assert labels == [max(range(C), key=row.__getitem__) for row in ref]


def test_posthoc_head_without_counts_is_a_clear_error():
    head = MODELS.build(
        dict(type='LogitAdjustedLinearClsHead', num_classes=C, in_channels=4))
    assert head.needs_class_counts
    with pytest.raises(
            ValueError,
            match=r'LogitAdjustedLinearClsHead: posthoc_tau=1.0 needs the '
            r'class counts of the training set, and the head has none.*'
            r"model\.head\.class_counts=\[n0,n1,\.\.\.\]'.*posthoc_tau=0"):
        head.predict((torch.randn(2, 4), ))
    # Without post-hoc adjustment it predicts as LinearClsHead.
    head.posthoc_tau = 0.0
    assert len(head.predict((torch.randn(2, 4), ))) == 2
