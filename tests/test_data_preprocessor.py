"""HybridDataPreprocessor: multi-view order, shape and values; single-view
batches identical to mmpretrain's ClsDataPreprocessor; errors."""
import copy

import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.models.utils import HybridDataPreprocessor
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

MEAN = [100.0, 110.0, 120.0]
STD = [50.0, 60.0, 70.0]


def make_pair_samples(n, views=2, size=(4, 5), seed=0):
    """What HybridPairDataset returns for n index pairs."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for k in range(n):
        inputs = [
            torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8)
            for _ in range(views + 1)
        ]
        samples.append(
            dict(
                inputs=inputs,
                data_samples=[
                    DataSample(metainfo=dict(tag=f'u{k}')).set_gt_label(k),
                    DataSample(metainfo=dict(tag=f'b{k}')).set_gt_label(
                        10 + k)
                ]))
    return samples


def by_hand(img: torch.Tensor, to_rgb: bool) -> torch.Tensor:
    """RGB flip, float, (x - mean) / std, one image, written out."""
    out = torch.empty(img.shape, dtype=torch.float32)
    for c in range(3):
        src = 2 - c if to_rgb else c
        out[c] = (img[src].float() - MEAN[c]) / STD[c]
    return out


@pytest.mark.parametrize('to_rgb', [True, False])
def test_multi_view_order_shape_and_values(to_rgb):
    n, views = 3, 2
    samples = make_pair_samples(n, views)
    batch = pseudo_collate(samples)
    pre = MODELS.build(
        dict(
            type='HybridDataPreprocessor', mean=MEAN, std=STD,
            to_rgb=to_rgb))
    out = pre(batch, training=True)
    inputs, data_samples = out['inputs'], out['data_samples']
    assert inputs.shape == (views * n + n, 3, 4, 5)
    assert inputs.dtype == torch.float32
    row = 0
    for v in range(views + 1):  # view 1, view 2, balanced
        for k in range(n):
            expected = by_hand(samples[k]['inputs'][v], to_rgb)
            torch.testing.assert_close(inputs[row], expected)
            row += 1
    assert [s.tag for s in data_samples] == ['u0', 'u1', 'u2', 'b0', 'b1',
                                             'b2']
    assert [int(s.gt_label) for s in data_samples] == [0, 1, 2, 10, 11, 12]


def test_multi_view_padding_and_onehot():
    samples = make_pair_samples(2, views=2, size=(5, 6))
    pre = HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        to_rgb=False,
        pad_size_divisor=4,
        pad_value=-7.0,
        to_onehot=True,
        num_classes=16)
    out = pre(pseudo_collate(samples))
    inputs = out['inputs']
    assert inputs.shape == (6, 3, 8, 8)
    torch.testing.assert_close(inputs[4, :, :5, :6],
                               by_hand(samples[0]['inputs'][2], False))
    assert (inputs[:, :, 5:, :] == -7.0).all()
    assert (inputs[:, :, :, 6:] == -7.0).all()
    scores = torch.stack([s.gt_score for s in out['data_samples']])
    assert scores.shape == (4, 16)
    assert scores.argmax(1).tolist() == [0, 1, 10, 11]


def test_default_collated_views_match_pseudo_collated():
    samples = make_pair_samples(3)
    pre = HybridDataPreprocessor(mean=MEAN, std=STD, to_rgb=True)
    a = pre(pseudo_collate(copy.deepcopy(samples)))['inputs']
    collated = default_collate([dict(inputs=s['inputs']) for s in samples])
    assert isinstance(collated['inputs'], list)
    assert collated['inputs'][0].shape == (3, 3, 4, 5)
    b = pre(dict(inputs=collated['inputs']))
    torch.testing.assert_close(a, b['inputs'])
    assert b['data_samples'] is None


@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
def test_single_view_equals_cls_data_preprocessor(collate):
    g = torch.Generator().manual_seed(1)
    samples = [
        dict(
            inputs=torch.randint(0, 256, (3, 6, 6), generator=g).to(
                torch.uint8),
            data_samples=DataSample().set_gt_label(k)) for k in range(4)
    ]
    kwargs = dict(
        mean=MEAN,
        std=STD,
        to_rgb=True,
        pad_size_divisor=4,
        to_onehot=True,
        num_classes=5)
    ours = HybridDataPreprocessor(**kwargs)(
        collate(copy.deepcopy(samples)), training=False)
    ref = ClsDataPreprocessor(**kwargs)(
        collate(copy.deepcopy(samples)), training=False)
    torch.testing.assert_close(ours['inputs'], ref['inputs'])
    assert ours['inputs'].shape == (4, 3, 8, 8)
    for a, b in zip(ours['data_samples'], ref['data_samples']):
        assert torch.equal(a.gt_label, b.gt_label)
        assert torch.equal(a.gt_score, b.gt_score)


def test_batch_augments_rejected_for_multi_view_training():
    pre = HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        num_classes=16,
        batch_augments=dict(augments=dict(type='Mixup', alpha=0.8)))
    batch = pseudo_collate(make_pair_samples(2))
    with pytest.raises(ValueError,
                       match='batch_augments .*not supported for multi-view'):
        pre(batch, training=True)
    # Evaluation of such a batch is fine; ordinary batches keep Mixup.
    assert pre(batch, training=False)['inputs'].shape == (6, 3, 4, 5)


def test_views_of_different_batch_sizes_rejected():
    batch = dict(inputs=[[torch.zeros(3, 2, 2)] * 2, [torch.zeros(3, 2, 2)]])
    with pytest.raises(ValueError, match='view 0 has 2, view 1 has 1'):
        HybridDataPreprocessor()(batch)
    batch = dict(inputs=[[torch.zeros(3, 2, 2)]], data_samples=[[1]])
    with pytest.raises(TypeError, match='data_samples must be data samples'):
        HybridDataPreprocessor()(batch)
