"""mmlt_hybrid/models/losses/utils.py: the helpers SupConLoss, PSCLoss and
the projection heads share (input check, compute dtype, log-sum-exp)."""
import math

import pytest
import torch
from conftest import NoReadBack

from mmlt_hybrid.models.losses.utils import (
    check_features_labels,
    log_sum_exp,
    loss_dtype,
)


def test_log_sum_exp_matches_a_python_sum_and_ignores_minus_inf():
    x = torch.tensor([[1.0, 2.0, -3.0], [0.5, float('-inf'), 0.25],
                      [1000.0, 999.0, float('-inf')]],
                     dtype=torch.float64)
    expected = [
        math.log(math.exp(1) + math.exp(2) + math.exp(-3)),
        math.log(math.exp(0.5) + math.exp(0.25)),
        # exp(1000) overflows: 1000 + log(1 + e^-1) written by hand.
        1000 + math.log(1 + math.exp(-1)),
    ]
    out = log_sum_exp(x)
    assert out.shape == (3, 1)
    for got, want in zip(out[:, 0].tolist(), expected):
        assert got == pytest.approx(want, rel=1e-12)


def test_log_sum_exp_gradient_is_the_softmax():
    x = torch.tensor([[0.3, -1.2, 2.0, 0.0]],
                     dtype=torch.float64,
                     requires_grad=True)
    log_sum_exp(x).sum().backward()
    values = [0.3, -1.2, 2.0, 0.0]
    total = sum(math.exp(v) for v in values)
    for got, v in zip(x.grad[0].tolist(), values):
        assert got == pytest.approx(math.exp(v) / total, rel=1e-12)


@pytest.mark.parametrize('dtypes,expected', [
    ((torch.float16, ), torch.float32),
    ((torch.bfloat16, ), torch.float32),
    ((torch.float32, ), torch.float32),
    ((torch.float64, ), torch.float64),
    ((torch.bfloat16, torch.float16), torch.float32),
    ((torch.float16, torch.float64), torch.float64),
])
def test_loss_dtype_is_at_least_float32(dtypes, expected):
    tensors = [torch.zeros(2, dtype=d) for d in dtypes]
    assert loss_dtype(*tensors) == expected


def test_check_features_labels_accepts_rows_without_reading_back():
    with NoReadBack():
        check_features_labels('Owner', torch.randn(5, 3),
                              torch.tensor([0, 1, 1, 4, 2]))
        check_features_labels('Owner', torch.randn(0, 3),
                              torch.zeros(0, dtype=torch.long))


@pytest.mark.parametrize(
    'features,labels,match',
    [
        # One label per row.
        ((6, 4), torch.tensor([0, 1, 2]),
         r'Owner: .*one label per row of features; got features \(6, 4\) and '
         r'labels \(3,\)'),
        # Features must be (M, d).
        ((4, ), torch.tensor([0, 1, 2, 3]),
         r'Owner: expects features \(M, d\).*got features \(4,\)'),
        # Labels must be integers, one per row.
        ((2, 3), torch.tensor([0.0, 1.0]),
         r'Owner: .*integer labels.*labels \(2,\) of torch.float32'),
        ((2, 3), torch.tensor([[0], [1]]),
         r'Owner: .*labels \(M,\).*labels \(2, 1\) of torch.int64'),
    ])
def test_check_features_labels_names_what_is_wrong(features, labels, match):
    with pytest.raises(ValueError, match=match):
        check_features_labels('Owner', torch.randn(*features), labels)
