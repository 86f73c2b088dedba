"""Two gloo processes under DDP optimise the same SupCon and PSC objectives
as one process with the concatenated batch (loss and gradients, to 1e-5),
also when the ranks hold different numbers of rows; every rank reports the
global loss, and PSC reads nothing back to the host."""

import pytest
import torch
import torch.nn as nn
from conftest import NoReadBack, run_gloo

WORLD_SIZE = 2
IN_CHANNELS = 6
PSC_CLASSES = 6
TIMEOUT_S = 120

# Each case: (number of views, per-rank image labels). Labels are chosen so
# that the ranks hold different numbers of valid anchors (anchors with a
# positive in the global batch) and, in some cases, different batch sizes.
CASES = {
    'two_views_shared_labels': (2, ([0, 1, 2, 1], [2, 3, 0, 4])),
    'one_view_unequal_valid_anchors': (1, ([0, 1, 2, 3], [0, 0, 5, 6])),
    'one_view_rank_without_valid_anchor': (1, ([7, 8, 9], [1, 1, 2, 2, 3])),
    'two_views_different_sizes': (2, ([0, 1, 2], [0, 3, 3, 4, 5])),
    # No anchor has a positive on any rank: every rank still enters the
    # gather's backward and gets a zero loss and zero gradients.
    'one_view_no_valid_anchor_anywhere': (1, ([0, 1, 2], [3, 4])),
}
NO_POSITIVES = 'one_view_no_valid_anchor_anywhere'

# PSC (labels in [0, PSC_CLASSES)): every row counts, so what matters is the
# number of rows per rank. The case: shards of 4 and 8 rows.
PSC_CASES = {
    'psc_equal_shards': (1, ([0, 1, 2, 3], [4, 5, 0, 1])),
    'psc_shards_4_and_8': (1, ([0, 1, 2, 3], [4, 5, 0, 1, 2, 2, 3, 5])),
    'psc_two_views_3_and_5': (2, ([5, 4, 3], [0, 1, 1, 2, 0])),
    # One rank without rows still joins the collectives.
    'psc_empty_rank': (1, ([], [0, 3, 3, 1, 4])),
}
ALL_CASES = {**CASES, **PSC_CASES}


def make_head(case):
    from mmlt_hybrid.models.heads import PSCHead, SupConHead
    torch.manual_seed(0)
    if case in PSC_CASES:
        return PSCHead(
            num_classes=PSC_CLASSES,
            in_channels=IN_CHANNELS,
            hid_channels=8,
            out_channels=5,
            loss=dict(type='PSCLoss', temperature=0.5))
    return SupConHead(
        in_channels=IN_CHANNELS,
        hid_channels=8,
        out_channels=5,
        loss=dict(type='SupConLoss', temperature=0.1))


def rank_batch(case, rank):
    """Features (V, N, C) and the N image labels of one rank."""
    num_views, per_rank = ALL_CASES[case]
    labels = torch.tensor(per_rank[rank], dtype=torch.long)
    gen = torch.Generator().manual_seed(1000 * len(case) + rank)
    feats = torch.randn(
        num_views,
        labels.numel(),
        IN_CHANNELS,
        generator=gen,
        dtype=torch.float64)
    return feats, labels


class LossModule(nn.Module):
    """forward() computes the head's loss, so DDP's hooks apply."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, feats, labels):
        return self.head.loss(feats, labels)['loss']


def grads_of(module):
    return {
        name: p.grad.detach().clone()
        for name, p in module.named_parameters()
    }


def _worker(rank):
    import mmlt_hybrid  # noqa: F401
    results = {}
    for case in sorted(ALL_CASES):
        head = make_head(case).double()
        model = nn.parallel.DistributedDataParallel(LossModule(head))
        feats, labels = rank_batch(case, rank)
        num_views = feats.shape[0]
        # View-major rows, one label per row (the head knows no views).
        rows = feats.reshape(-1, IN_CHANNELS)
        if case in PSC_CASES:
            # No value goes to the host, collectives included.
            with NoReadBack():
                loss = model(rows, labels.repeat(num_views))
        else:
            loss = model(rows, labels.repeat(num_views))
        loss.backward()
        results[case] = dict(loss=loss.item(), grads=grads_of(head))
    return results


@pytest.fixture(scope='module')
def ddp_results(tmp_path_factory):
    return run_gloo(
        _worker,
        WORLD_SIZE,
        tmp_path_factory.mktemp('supcon_ddp'),
        timeout=TIMEOUT_S)


def single_process(case):
    """Loss and gradients of one process given both ranks' batches."""
    batches = [rank_batch(case, r) for r in range(WORLD_SIZE)]
    feats = torch.cat([f for f, _ in batches], dim=1)  # (V, N1 + N2, C)
    labels = torch.cat([lab for _, lab in batches]).repeat(feats.shape[0])
    head = make_head(case).double()
    loss = head.loss(feats.reshape(-1, IN_CHANNELS), labels)['loss']
    loss.backward()
    return loss.item(), grads_of(head)


def num_valid_anchors(case):
    """Valid anchors per rank, counted against the global batch."""
    num_views, per_rank = CASES[case]
    everything = [y for labels in per_rank for y in labels] * num_views
    counts = []
    for labels in per_rank:
        counts.append(
            sum(num_views * 1 for y in labels if everything.count(y) > 1))
    return counts


def test_cases_cover_unequal_valid_anchors():
    unequal = [c for c in CASES if len(set(num_valid_anchors(c))) > 1]
    assert len(unequal) >= 3
    assert 0 in num_valid_anchors('one_view_rank_without_valid_anchor')


def test_psc_cases_cover_unequal_shards():
    sizes = {
        case: [len(labels) for labels in per_rank]
        for case, (_, per_rank) in PSC_CASES.items()
    }
    assert sizes['psc_shards_4_and_8'] == [4, 8]
    assert sum(len(set(s)) > 1 for s in sizes.values()) == 3


@pytest.mark.parametrize('case', sorted(set(ALL_CASES) - {NO_POSITIVES}))
def test_every_rank_reports_the_one_process_loss(ddp_results, case):
    # The log shows rank 0's value; every rank holds the global loss, so
    # whichever rank logs, it is the loss of one process on all the rows.
    expected_loss, _ = single_process(case)
    assert expected_loss > 0
    assert ddp_results[0][case]['loss'] == ddp_results[1][case]['loss']
    for rank in range(WORLD_SIZE):
        assert ddp_results[rank][case]['loss'] == pytest.approx(
            expected_loss, abs=1e-5, rel=1e-5), f'{case}: rank {rank}'


@pytest.mark.parametrize('case', sorted(set(ALL_CASES) - {NO_POSITIVES}))
def test_gradients_equal_one_process(ddp_results, case):
    _, expected_grads = single_process(case)
    for name, expected in expected_grads.items():
        assert expected.abs().max() > 0, name
        for rank in range(WORLD_SIZE):
            got = ddp_results[rank][case]['grads'][name]
            # DDP has already averaged the gradients over the ranks.
            assert torch.allclose(
                got, expected, atol=1e-5,
                rtol=1e-5), (f'{case}: {name} on rank {rank}: max diff '
                             f'{(got - expected).abs().max().item():.3g}')


def test_no_positive_on_any_rank_gives_zero(ddp_results):
    assert num_valid_anchors(NO_POSITIVES) == [0, 0]
    expected_loss, expected_grads = single_process(NO_POSITIVES)
    assert expected_loss == 0.0
    for rank in range(WORLD_SIZE):
        assert ddp_results[rank][NO_POSITIVES]['loss'] == 0.0
        for name, grad in ddp_results[rank][NO_POSITIVES]['grads'].items():
            assert torch.isfinite(grad).all(), name
            assert torch.count_nonzero(grad) == 0, name
            assert torch.count_nonzero(expected_grads[name]) == 0, name
