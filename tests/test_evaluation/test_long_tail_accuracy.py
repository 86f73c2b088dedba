"""LongTailAccuracy: a hand-computed example, the CIFAR-100-LT split, a real
2-process (gloo) evaluation equal to the single-process one, and errors."""
import numpy as np
import pytest
import torch
from conftest import run_gloo
from mmengine.dataset import DefaultSampler
from mmengine.evaluator import Evaluator
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.datasets import long_tailed_counts
from mmlt_hybrid.evaluation.metrics.long_tail_accuracy import (
    LongTailAccuracy,
    shot_groups,
)

# 6 classes; with the default thresholds (>100 many, 20..100 medium, <20 few)
# classes 0, 1 are many-shot, 2, 3, 4 medium (100 and 20 are inclusive
# boundaries) and 5 few-shot.
COUNTS = [500, 150, 100, 50, 20, 5]
# Test images as (gt, top-1 prediction, second-ranked class).
IMAGES = [
    # class 0: 3 of 4 right (the wrong one has gt second): 75 %
    (0, 0, 1),
    (0, 0, 2),
    (0, 0, 3),
    (0, 4, 0),
    # class 1: 1 of 2 right (gt not second on the wrong one): 50 %
    (1, 1, 0),
    (1, 2, 3),
    # class 2: 4 of 4: 100 %
    (2, 2, 0),
    (2, 2, 1),
    (2, 2, 5),
    (2, 2, 4),
    # class 3: 0 of 2 (one wrong has gt second): 0 %
    (3, 0, 3),
    (3, 5, 1),
    # class 4: 1 of 1: 100 %
    (4, 4, 3),
    # class 5: 1 of 3: 33.3 %
    (5, 5, 0),
    (5, 0, 1),
    (5, 3, 2),
]
# Worked out by hand from the table above.
EXPECTED = {
    'top1': 100 * 10 / 16,  # 3 + 1 + 4 + 0 + 1 + 1 right
    'top2': 100 * 12 / 16,  # + (0, 4, 0) and (3, 0, 3)
    'mean_class_acc': 100 * (0.75 + 0.5 + 1 + 0 + 1 + 1 / 3) / 6,
    'many': 100 * (0.75 + 0.5) / 2,
    'medium': 100 * (1 + 0 + 1) / 3,
    'few': 100 * (1 / 3),
}


def make_sample(gt, top1, second, num_classes=6):
    score = torch.arange(num_classes, dtype=torch.float32) * 0.01
    score[second] = 0.5
    score[top1] = 1.0
    return DataSample().set_gt_label(gt).set_pred_score(score)


def approx_dict(d):
    return {k: pytest.approx(v, abs=1e-9) for k, v in d.items()}


def test_hand_computed_example_through_evaluator():
    evaluator = Evaluator(
        METRICS.build(
            dict(type='LongTailAccuracy', topk=(1, 2), class_counts=COUNTS)))
    evaluator.dataset_meta = dict(classes=[f'c{i}' for i in range(6)])
    samples = [make_sample(*im) for im in IMAGES]
    for start in range(0, len(samples), 5):  # batches of 5
        evaluator.process(samples[start:start + 5])
    metrics = evaluator.evaluate(len(samples))
    assert metrics == approx_dict({
        f'long_tail/{k}': v
        for k, v in EXPECTED.items()
    })


def test_pred_label_only_and_empty_groups():
    # A model output without scores: top-1 only.
    metric = LongTailAccuracy(class_counts=[300, 200])
    metric.process(None, [
        dict(gt_label=torch.tensor([0]), pred_label=torch.tensor([0])),
        dict(gt_label=torch.tensor([1]), pred_label=torch.tensor([0])),
        dict(gt_label=torch.tensor([1]), pred_label=torch.tensor([1])),
    ])
    out = metric.evaluate(3)
    # Both classes are many-shot: medium and few are left out.
    assert out == approx_dict({
        'long_tail/top1': 200 / 3,
        'long_tail/mean_class_acc': 75.0,
        'long_tail/many': 75.0
    })


def test_calculate_from_ranked_labels():
    """The tensor-level numbers (as mmpretrain's ``Accuracy.calculate``):
    the table above as (N, 2) labels ranked best first."""
    pred = torch.tensor([[top1, second] for _, top1, second in IMAGES])
    gt = torch.tensor([im[0] for im in IMAGES])
    out = LongTailAccuracy.calculate(pred, gt, COUNTS, topk=(1, 2))
    per_class = out.pop('per_class')
    assert out == approx_dict(EXPECTED)
    assert per_class.tolist() == pytest.approx([75, 50, 100, 0, 100, 100 / 3])


def test_calculate_from_top1_labels_with_a_class_without_test_images():
    # Counts 30, 20, 10, 5 with thresholds 25 / 8: class 0 many-shot, 1 and
    # 2 medium, 3 few. Class 2 has no test image: NaN, in no average.
    # Right: class 0 1 of 2, class 1 1 of 1, class 3 1 of 2.
    out = LongTailAccuracy.calculate(
        np.array([0, 1, 1, 0, 3]),
        np.array([0, 0, 1, 3, 3]), [30, 20, 10, 5],
        many_shot_thr=25,
        few_shot_thr=8)
    per_class = out.pop('per_class')
    assert per_class[[0, 1, 3]].tolist() == [50, 100, 50]
    assert per_class[2].isnan()
    assert out == approx_dict({
        'top1': 60.0,
        'mean_class_acc': 200 / 3,
        'many': 50.0,
        'medium': 100.0,
        'few': 50.0
    })
    with pytest.raises(
            ValueError, match='gt_label 7 is outside the 2 '
            'classes'):
        LongTailAccuracy.calculate(
            torch.tensor([0]), torch.tensor([7]), [1, 2])


def test_cifar100_lt_if100_split_35_35_30():
    counts = long_tailed_counts(500, 100, 100)
    groups = shot_groups(counts)
    assert [len(groups[k]) for k in ('many', 'medium', 'few')] == [35, 35, 30]
    # Brute force, written differently.
    assert groups['many'] == [i for i, c in enumerate(counts) if c > 100]
    assert groups['few'] == [i for i, c in enumerate(counts) if c < 20]
    # Custom thresholds move the boundaries.
    groups = shot_groups(counts, many_shot_thr=50, few_shot_thr=10)
    assert sum(len(g) for g in groups.values()) == 100
    assert all(counts[i] > 50 for i in groups['many'])


def _rank_main(rank, samples, counts):
    metric = LongTailAccuracy(topk=(1, 2), class_counts=counts)
    metric.dataset_meta = dict(classes=[str(i) for i in range(6)])
    # The validation loop's sharding: DefaultSampler, round_up pads.
    sampler = DefaultSampler(list(range(len(samples))), shuffle=False)
    shard = [samples[i] for i in sampler]
    for start in range(0, len(shard), 3):
        metric.process(None, shard[start:start + 3])
    return len(shard), metric.evaluate(len(samples))


def test_two_process_gloo_equals_single_process(tmp_path):
    # 17 images: the two ranks get 9 each, one of them a padded duplicate
    # that must not count.
    images = IMAGES + [(4, 0, 1)]
    samples = [make_sample(*im).to_dict() for im in images]
    single = LongTailAccuracy(topk=(1, 2), class_counts=COUNTS)
    single.dataset_meta = dict(classes=[str(i) for i in range(6)])
    single.process(None, samples)
    expected = single.evaluate(len(samples))

    out = run_gloo(_rank_main, 2, tmp_path, samples, COUNTS)
    shard_sizes = [size for size, _ in out]
    results = [result for _, result in out]
    assert shard_sizes == [9, 9]
    # Rank 0 computes from the gathered results and broadcasts them.
    assert results[0] == approx_dict(expected)
    assert results[1] == approx_dict(expected)
    # The padded duplicate would have changed the numbers.
    assert expected['long_tail/mean_class_acc'] != pytest.approx(
        EXPECTED['mean_class_acc'])


@pytest.mark.parametrize('topk,refused', [(0, '0'), ((1, 0), '0'),
                                          ('a', "'a'"), ((), r'\(\)'),
                                          ((1, True), 'True')])
def test_bad_topk(topk, refused):
    with pytest.raises(
            ValueError,
            match=f'LongTailAccuracy: topk={refused} '
            'is not allowed; it must be an integer >= 1'):
        LongTailAccuracy(topk=topk)


def test_bad_thresholds():
    with pytest.raises(
            ValueError,
            match='few_shot_thr=50 is not allowed; it must be <= '
            'many_shot_thr=20'):
        LongTailAccuracy(many_shot_thr=20, few_shot_thr=50)
    with pytest.raises(
            ValueError,
            match='LongTailAccuracy: many_shot_thr=-1 is not '
            'allowed; it must be a .*number >= 0'):
        LongTailAccuracy(many_shot_thr=-1)
    with pytest.raises(
            ValueError,
            match="shot_groups: few_shot_thr='x' is not allowed; "
            'it must be a .*number >= 0'):
        shot_groups([1, 2], few_shot_thr='x')


def test_bad_class_counts():
    with pytest.raises(
            ValueError,
            match=r'class_counts\[2\]=-1 is not '
            'allowed; it must be an integer >= 0'):
        LongTailAccuracy(class_counts=[5, 3, -1])
    with pytest.raises(ValueError, match=r'class_counts\[0\]=2.5 is not'):
        LongTailAccuracy(class_counts=[2.5])
    # A tensor gives its values: integers only, as a list.
    with pytest.raises(ValueError, match=r'class_counts\[0\]=4.0 is not'):
        LongTailAccuracy(class_counts=torch.tensor([4.0, 2.0]))
    assert LongTailAccuracy(
        class_counts=torch.tensor([4, 2])).class_counts == [4, 2]
    with pytest.raises(
            TypeError,
            match="class_counts='abc' is not allowed; "
            'it must be one integer >= 0 per class'):
        LongTailAccuracy(class_counts='abc')
    with pytest.raises(
            ValueError,
            match=r'class_counts=\[\] is not allowed; it must '
            'be one integer >= 0 per class'):
        LongTailAccuracy(class_counts=[])
    metric = LongTailAccuracy()
    with pytest.raises(ValueError, match=r'class_counts\[1\]=None is not'):
        metric.class_counts = [1, None]
    metric.class_counts = np.array([3, 0, 1])
    assert metric.class_counts == [3, 0, 1]

    # Length checked against the number of classes at evaluation.
    metric = LongTailAccuracy(class_counts=COUNTS[:5])
    metric.dataset_meta = dict(classes=[str(i) for i in range(6)])
    metric.process(None, [make_sample(0, 0, 1).to_dict()])
    with pytest.raises(
            ValueError,
            match='class_counts has 5 entries but the model / '
            'dataset has 6 classes'):
        metric.evaluate(1)
    # Without dataset_meta the score size gives the number of classes.
    metric = LongTailAccuracy(class_counts=COUNTS[:5])
    metric.process(None, [make_sample(0, 0, 1).to_dict()])
    with pytest.raises(ValueError, match='5 entries .* 6 classes'):
        metric.evaluate(1)
    # Labels beyond class_counts (no score to tell the class number).
    metric = LongTailAccuracy(class_counts=[1, 2])
    metric.process(
        None, [dict(gt_label=torch.tensor([7]), pred_label=torch.tensor([7]))])
    with pytest.raises(
            ValueError, match='gt_label 7 is outside the 2 '
            'classes'):
        metric.evaluate(1)


def test_missing_counts_and_bad_predictions():
    metric = METRICS.build(dict(type='LongTailAccuracy'))
    metric.process(None, [make_sample(0, 0, 1).to_dict()])
    with pytest.raises(
            ValueError,
            match='LongTailAccuracy has no class_counts.*'
            'ClassCountsHook'):
        metric.evaluate(1)
    with pytest.raises(
            ValueError,
            match=r'topk=\(1, 7\) asks for k=7, but there are '
            'only 6 classes'):
        LongTailAccuracy(topk=(1, 7)).process(None,
                                              [make_sample(0, 0, 1).to_dict()])
    with pytest.raises(ValueError, match='needs pred_score'):
        LongTailAccuracy(topk=(1, 5)).process(
            None,
            [dict(gt_label=torch.tensor([0]), pred_label=torch.tensor([0]))])
    with pytest.raises(ValueError, match='exactly one gt_label'):
        LongTailAccuracy().process(
            None,
            [dict(gt_label=torch.tensor([0, 1]), pred_score=torch.ones(3))])
    with pytest.raises(KeyError, match='pred_score or pred_label'):
        LongTailAccuracy().process(None, [dict(gt_label=torch.tensor([0]))])
