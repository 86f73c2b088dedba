"""BalancedContrastiveLoss against a brute-force per-anchor reference (plain
Python loops, float64, no log-sum-exp), a case worked out by hand, large
logits, and two gloo processes against one process on the whole batch."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import NoReadBack, run_gloo
from mmpretrain.registry import MODELS

import mmlt_hybrid  # noqa: F401  (registers the components)
from mmlt_hybrid.models.losses import BalancedContrastiveLoss


def bcl_reference(z, labels, prototypes, tau):
    """BCL anchor by anchor, differentiable: every candidate is a (vector,
    class) pair, the class sizes a dict, the denominator a sum of
    ``exp(.) / n`` terms (no log-sum-exp), float64 torch scalars."""
    y = labels.tolist()
    candidates = [(z[k], y[k]) for k in range(len(y))]
    candidates += [(prototypes[c], c) for c in range(prototypes.shape[0])]
    total = 0.0
    for i in range(len(y)):
        others = [cand for k, cand in enumerate(candidates) if k != i]
        sizes = {}
        for _, cls in others:
            sizes[cls] = sizes.get(cls, 0) + 1
        denominator = 0.0
        for vec, cls in others:
            denominator = denominator + torch.exp(
                torch.dot(z[i], vec) / tau) / sizes[cls]
        positives = [vec for vec, cls in others if cls == y[i]]
        term = 0.0
        for vec in positives:
            term = term + torch.log(
                torch.exp(torch.dot(z[i], vec) / tau) / denominator)
        total = total - term / len(positives)
    return total / len(y)


def unit_rows(num_rows, dim, seed):
    """``num_rows`` random float64 unit vectors, the same for a seed."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(
        torch.randn(num_rows, dim, dtype=torch.float64, generator=generator),
        dim=1)


CASES = {
    # name: (row labels, number of classes C)
    'general': ([0, 1, 1, 2, 0, 3, 1, 2, 2, 0], 4),
    'class_with_one_row': ([0, 0, 1, 2, 2, 2], 3),
    'classes_only_through_prototypes': ([0, 0, 2, 2, 2], 5),
    'two_views': ([0, 1, 2, 0, 0, 1, 2, 0], 4),
    'single_row': ([2], 3),
    'one_class_many_rows': ([1, 1, 1, 1], 2),
}


def case_inputs(case, dim=6):
    row_labels, num_classes = CASES[case]
    labels = torch.tensor(row_labels)
    z = unit_rows(len(row_labels), dim, seed=len(case))
    prototypes = unit_rows(num_classes, dim, seed=100 + len(case))
    return z, labels, prototypes


def test_cases_cover_the_corners():
    counts = {
        case: [labels.count(c) for c in range(num_classes)]
        for case, (labels, num_classes) in CASES.items()
    }
    assert 1 in counts['class_with_one_row']
    assert 0 in counts['classes_only_through_prototypes']
    assert len(CASES['single_row'][0]) == 1


@pytest.mark.parametrize('tau', [0.07, 0.1, 0.5])
@pytest.mark.parametrize('case', sorted(CASES))
def test_value_and_gradients_match_reference(case, tau):
    z, labels, prototypes = case_inputs(case)
    z.requires_grad_()
    prototypes.requires_grad_()
    loss = BalancedContrastiveLoss(temperature=tau)(z, labels, prototypes)
    assert loss.dtype == torch.float64
    loss.backward()

    z_ref = z.detach().clone().requires_grad_()
    p_ref = prototypes.detach().clone().requires_grad_()
    expected = bcl_reference(z_ref, labels, p_ref, tau)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10, abs=0)
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        prototypes.grad, p_ref.grad, rtol=1e-9, atol=1e-12)
    assert prototypes.grad.abs().sum() > 0


def test_float32_input_matches_reference():
    z, labels, prototypes = case_inputs('general')
    loss = BalancedContrastiveLoss(temperature=0.1)(z.float(), labels,
                                                    prototypes.float())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        bcl_reference(z, labels, prototypes, 0.1).item(), rel=1e-5)


def test_hand_computed_case():
    # Two rows of class 0 at 0 and 90 degrees; p_0 at 60 degrees, p_1 at
    # 180 degrees; tau = 0.5.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    prototypes = torch.tensor([[0.5, math.sqrt(3) / 2], [-1.0, 0.0]],
                              dtype=torch.float64)
    labels = torch.tensor([0, 0])
    # Anchor 0: candidates z_1 (class 0, z.k/tau = 0), p_0 (class 0, 1),
    # p_1 (class 1, -2); n_0 = 2, n_1 = 1; positives z_1 and p_0:
    # l_0 = log D_0 - (0 + 1) / 2.
    d_0 = (math.exp(0) + math.exp(1)) / 2 + math.exp(-2)
    l_0 = math.log(d_0) - 0.5
    # Anchor 1: z_0 (0), p_0 (sqrt 3), p_1 (0):
    # l_1 = log D_1 - (0 + sqrt 3) / 2.
    d_1 = (math.exp(0) + math.exp(math.sqrt(3))) / 2 + math.exp(0)
    l_1 = math.log(d_1) - math.sqrt(3) / 2
    loss = BalancedContrastiveLoss(temperature=0.5)(z, labels, prototypes)
    assert loss.item() == pytest.approx((l_0 + l_1) / 2, rel=1e-12)
    # Without the class average (a plain sum) the value would differ.
    plain = (math.log(1 + math.e + math.exp(-2)) - 0.5 +
             math.log(1 + math.exp(math.sqrt(3)) + 1) - math.sqrt(3) / 2) / 2
    assert abs(loss.item() - plain) > 0.1


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_small_temperature_near_identical_rows_is_stable(dtype):
    # tau = 0.01: logits up to 100, exp overflows float32 without the
    # log-sum-exp.
    base = unit_rows(1, 4, seed=3)
    noise = torch.randn(
        8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    z = F.normalize(base + 1e-3 * noise, dim=1)
    labels = torch.tensor([0, 1, 1, 2, 0, 0, 3, 1])
    prototypes = torch.cat([base, unit_rows(3, 4, seed=5)])
    loss = BalancedContrastiveLoss(temperature=0.01)(z.to(dtype), labels,
                                                     prototypes.to(dtype))
    assert torch.isfinite(loss)
    expected = bcl_reference(z, labels, prototypes, 0.01).item()
    assert math.isfinite(expected)
    rel = 1e-4 if dtype == torch.float32 else 1e-10
    assert loss.item() == pytest.approx(expected, rel=rel)


def test_loss_weight_and_registry():
    z, labels, prototypes = case_inputs('general')
    loss = MODELS.build(
        dict(type='BalancedContrastiveLoss', temperature=0.2, loss_weight=0.5))
    assert isinstance(loss, BalancedContrastiveLoss)
    assert loss.min_rows == 1 and loss.gather_distributed is True
    assert loss(z, labels, prototypes).item() == pytest.approx(
        0.5 * bcl_reference(z, labels, prototypes, 0.2).item(), rel=1e-10)


def test_no_value_is_read_back_from_the_tensors():
    z, labels, prototypes = case_inputs('classes_only_through_prototypes')
    with NoReadBack():
        loss = BalancedContrastiveLoss(temperature=0.3)(z, labels, prototypes)
    assert loss.item() == pytest.approx(
        bcl_reference(z, labels, prototypes, 0.3).item(), rel=1e-10)


def test_half_precision_input_is_computed_in_float32():
    z, labels, prototypes = case_inputs('general')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = BalancedContrastiveLoss()(z.bfloat16(), labels,
                                         prototypes.bfloat16())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        bcl_reference(z.bfloat16().double(), labels,
                      prototypes.bfloat16().double(), 0.1).item(),
        rel=1e-5)


@pytest.mark.parametrize('key,value', [('temperature', 0),
                                       ('temperature', float('nan')),
                                       ('loss_weight', float('inf'))])
def test_bad_settings(key, value):
    with pytest.raises(
            ValueError,
            match=f'BalancedContrastiveLoss: {key}=.* is not '
            'allowed'):
        BalancedContrastiveLoss(**{key: value})
    with pytest.raises(TypeError, match='gather_distributed=1 is not'):
        BalancedContrastiveLoss(gather_distributed=1)


def test_bad_shapes():
    loss = BalancedContrastiveLoss()
    z, labels, prototypes = case_inputs('general')
    with pytest.raises(
            ValueError, match=r'got features \(10, 6\) and '
            r'labels \(9,\)'):
        loss(z, labels[:9], prototypes)
    with pytest.raises(
            ValueError,
            match=r'prototypes must be \(C, d\).*d = '
            r'6.*got prototypes \(4, 5\)'):
        loss(z, labels, prototypes[:, :5])
    with pytest.raises(ValueError, match=r'got prototypes \(6,\)'):
        loss(z, labels, prototypes[0])
    with pytest.raises(ValueError, match=r'C >= 1.*got prototypes \(0, 6\)'):
        loss(z, labels, prototypes[:0])


# Two gloo processes: the candidates are the rows of both ranks.

WORLD_SIZE = 2
DDP_TAU = 0.2
DDP_DIM = 5
DDP_CLASSES = 6
DDP_CASES = {
    # name: per-rank row labels
    'equal_sizes': ([0, 1, 2, 1], [2, 3, 0, 4]),
    'unequal_sizes': ([0, 1, 2], [0, 3, 3, 4, 5, 5, 1]),
    'class_only_on_other_rank': ([0, 0, 1], [2, 2]),
    'empty_rank': ([], [0, 1, 1, 4]),
}


def ddp_rows(case, rank):
    labels = torch.tensor(DDP_CASES[case][rank], dtype=torch.long)
    return unit_rows(labels.numel(), DDP_DIM, seed=10 * len(case) + rank), \
        labels


def ddp_prototypes():
    return unit_rows(DDP_CLASSES, DDP_DIM, seed=77)


def _ddp_worker(rank):
    from mmlt_hybrid.models.losses import BalancedContrastiveLoss
    results = {}
    for case in sorted(DDP_CASES):
        z, labels = ddp_rows(case, rank)
        z.requires_grad_()
        prototypes = ddp_prototypes().requires_grad_()
        loss = BalancedContrastiveLoss(temperature=DDP_TAU)(z, labels,
                                                            prototypes)
        loss.backward()
        local = BalancedContrastiveLoss(
            temperature=DDP_TAU, gather_distributed=False)(z.detach(), labels,
                                                           ddp_prototypes())
        results[case] = dict(
            loss=loss.item(),
            local=local.item(),
            z_grad=z.grad,
            proto_grad=prototypes.grad)
    return results


@pytest.fixture(scope='module')
def ddp_results(tmp_path_factory):
    return run_gloo(
        _ddp_worker,
        WORLD_SIZE,
        tmp_path_factory.mktemp('bcl_ddp'),
        timeout=120)


@pytest.mark.parametrize('case', sorted(DDP_CASES))
def test_two_processes_equal_one_process(ddp_results, case):
    batches = [ddp_rows(case, r) for r in range(WORLD_SIZE)]
    z = torch.cat([b[0] for b in batches]).requires_grad_()
    labels = torch.cat([b[1] for b in batches])
    prototypes = ddp_prototypes().requires_grad_()
    expected = bcl_reference(z, labels, prototypes, DDP_TAU)
    expected.backward()
    for rank in range(WORLD_SIZE):
        assert ddp_results[rank][case]['loss'] == pytest.approx(
            expected.item(), rel=1e-10), f'rank {rank}'
    # What DDP does with the gradients of replicated parameters: average
    # them over the ranks. The rows' gradients reach the rank that holds
    # them, with the same factor W.
    z_grads = torch.cat(
        [ddp_results[r][case]['z_grad'] for r in range(WORLD_SIZE)])
    torch.testing.assert_close(
        z_grads / WORLD_SIZE, z.grad, rtol=1e-9, atol=1e-12)
    proto_grad = sum(ddp_results[r][case]['proto_grad']
                     for r in range(WORLD_SIZE))
    torch.testing.assert_close(
        proto_grad / WORLD_SIZE, prototypes.grad, rtol=1e-9, atol=1e-12)
    assert prototypes.grad.abs().sum() > 0


@pytest.mark.parametrize('case', sorted(DDP_CASES))
def test_without_gathering_each_rank_has_its_local_loss(ddp_results, case):
    for rank in range(WORLD_SIZE):
        z, labels = ddp_rows(case, rank)
        expected = bcl_reference(z, labels, ddp_prototypes(),
                                 DDP_TAU).item() if len(labels) else 0.0
        assert ddp_results[rank][case]['local'] == pytest.approx(
            expected, rel=1e-10, abs=1e-12), f'rank {rank}'
    # The gathered loss is not the local one where the ranks differ.
    assert ddp_results[0][case]['local'] != pytest.approx(
        ddp_results[0][case]['loss'])
