"""HybridDataPreprocessor: the explicit hybrid layout (order, values,
labels on the model's device), views made and augmented on the device,
per-step reproducible draws, single-image and multi-view batches, errors."""
import copy
import re
import uuid

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.logging import MessageHub
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlt_hybrid  # noqa: F401
from mmlt_hybrid.models.utils import HybridDataPreprocessor

MEAN = [100.0, 110.0, 120.0]
STD = [50.0, 60.0, 70.0]
FLIP = [dict(type='BatchRandomFlip', prob=0.5)]


@pytest.fixture(autouse=True)
def hub():
    """A fresh message hub, current for the test (no 'iter' unless the test
    sets one: an earlier runner's hub would hold its own)."""
    name = f'test_data_preprocessor_{uuid.uuid4().hex}'
    instance = MessageHub.get_instance(name)
    yield instance
    MessageHub._instance_dict.pop(name, None)


def set_step(hub, it, epoch=0, seed=7):
    hub.update_info('seed', seed)
    hub.update_info('epoch', epoch)
    hub.update_info('iter', it)


def pair_items(n, views=2, size=(4, 5), seed=0, same_image=False):
    """What HybridPairDataset returns for n index pairs: V views of the
    uniform image i and one view of the balanced image j (with
    ``same_image`` the balanced image is the uniform one)."""
    g = torch.Generator().manual_seed(seed)

    def image():
        return torch.randint(
            0, 256, (3, *size), generator=g, dtype=torch.uint8)

    items = []
    for k in range(n):
        view_list = [image() for _ in range(views)]
        items.append(
            dict(
                inputs=dict(
                    views=view_list,
                    balanced=view_list[0].clone() if same_image else image()),
                data_samples=dict(
                    uniform=DataSample(metainfo=dict(
                        tag=f'u{k}')).set_gt_label(k),
                    balanced=DataSample(metainfo=dict(
                        tag=f'b{k}')).set_gt_label(10 + k))))
    return items


def by_hand(img: torch.Tensor, to_rgb: bool = False) -> torch.Tensor:
    """RGB flip, float, (x - mean) / std, one image, written out."""
    out = torch.empty(img.shape, dtype=torch.float32)
    for c in range(3):
        src = 2 - c if to_rgb else c
        out[c] = (img[src].float() - MEAN[c]) / STD[c]
    return out


def flipped(img: torch.Tensor) -> torch.Tensor:
    """Horizontal flip, by explicit column reversal."""
    width = img.shape[-1]
    return img[..., [width - 1 - x for x in range(width)]]


def flip_pattern(out_rows, images):
    """For every row: False if it is the normalised image, True if it is the
    flipped one (anything else fails)."""
    pattern = []
    for row, img in zip(out_rows, images):
        plain, mirror = by_hand(img), by_hand(flipped(img))
        if torch.equal(row, plain):
            pattern.append(False)
        else:
            torch.testing.assert_close(row, mirror, rtol=0, atol=0)
            pattern.append(True)
    return pattern


@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('to_rgb', [True, False])
def test_hybrid_layout_order_and_values(collate, training, to_rgb):
    n, views = 3, 2
    items = pair_items(n, views)
    pre = MODELS.build(
        dict(type='HybridDataPreprocessor', mean=MEAN, std=STD, to_rgb=to_rgb))
    out = pre(collate(copy.deepcopy(items)), training=training)
    assert set(out) == {'inputs', 'data_samples'}
    inputs, data_samples = out['inputs'], out['data_samples']
    assert set(inputs) == {'views', 'balanced'}
    assert len(inputs['views']) == views
    for v in range(views):
        assert inputs['views'][v].shape == (n, 3, 4, 5)
        assert inputs['views'][v].dtype == torch.float32
        for k in range(n):
            torch.testing.assert_close(
                inputs['views'][v][k],
                by_hand(items[k]['inputs']['views'][v], to_rgb))
    assert inputs['balanced'].shape == (n, 3, 4, 5)
    for k in range(n):
        torch.testing.assert_close(
            inputs['balanced'][k],
            by_hand(items[k]['inputs']['balanced'], to_rgb))
    assert set(data_samples) == {'uniform', 'balanced'}
    assert [s.tag for s in data_samples['uniform']] == ['u0', 'u1', 'u2']
    assert [s.tag for s in data_samples['balanced']] == ['b0', 'b1', 'b2']
    assert [int(s.gt_label) for s in data_samples['uniform']] == [0, 1, 2]
    assert [int(s.gt_label) for s in data_samples['balanced']] == [10, 11, 12]


def test_images_and_labels_end_on_the_model_device():
    # The meta device stands for an accelerator: anything left on the host
    # (or copied elsewhere) would show up as a CPU tensor.
    pre = HybridDataPreprocessor(mean=MEAN, std=STD, num_views=2)
    pre.to('meta')
    out = pre(pseudo_collate(pair_items(3, views=1)), training=True)
    tensors = out['inputs']['views'] + [out['inputs']['balanced']]
    assert len(tensors) == 3
    assert all(t.device.type == 'meta' for t in tensors)
    assert all(t.shape == (3, 3, 4, 5) for t in tensors)
    for key in ('uniform', 'balanced'):
        assert [s.gt_label.device.type
                for s in out['data_samples'][key]] == ['meta'] * 3


def test_padding_and_onehot_on_hybrid_batch():
    items = pair_items(2, views=2, size=(5, 6))
    pre = HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        pad_size_divisor=4,
        pad_value=-7.0,
        to_onehot=True,
        num_classes=16)
    out = pre(pseudo_collate(items))
    balanced = out['inputs']['balanced']
    assert balanced.shape == (2, 3, 8, 8)
    torch.testing.assert_close(balanced[0, :, :5, :6],
                               by_hand(items[0]['inputs']['balanced']))
    for t in out['inputs']['views'] + [balanced]:
        assert (t[:, :, 5:, :] == -7.0).all()
        assert (t[:, :, :, 6:] == -7.0).all()
    scores = torch.stack([
        s.gt_score for key in ('uniform', 'balanced')
        for s in out['data_samples'][key]
    ])
    assert scores.shape == (4, 16)
    assert scores.argmax(1).tolist() == [0, 1, 10, 11]


def test_num_views_repeats_one_view_identically_without_transforms(hub):
    set_step(hub, it=0)
    items = pair_items(4, views=1)
    out = HybridDataPreprocessor(
        mean=MEAN, std=STD, num_views=3)(
            pseudo_collate(items), training=True)
    views = out['inputs']['views']
    assert len(views) == 3
    for view in views:
        for k in range(4):
            torch.testing.assert_close(view[k],
                                       by_hand(items[k]['inputs']['views'][0]))


def test_num_views_augments_the_repeated_views_independently(hub):
    set_step(hub, it=5)
    n = 64
    items = pair_items(n, views=1, size=(3, 6))  # random: asymmetric rows
    uniform = [item['inputs']['views'][0] for item in items]
    balanced = [item['inputs']['balanced'] for item in items]
    assert all(not torch.equal(img, flipped(img)) for img in uniform)
    pre = HybridDataPreprocessor(
        mean=MEAN, std=STD, num_views=2, batch_transforms=FLIP)
    out = pre(pseudo_collate(items), training=True)
    views = out['inputs']['views']
    assert len(views) == 2
    first = flip_pattern(views[0], uniform)
    second = flip_pattern(views[1], uniform)
    bal = flip_pattern(out['inputs']['balanced'], balanced)
    # Every row draws its own flip: both outcomes occur in every view, and
    # the two views of an image differ in some rows but not in all.
    for pattern in (first, second, bal):
        assert 0 < sum(pattern) < n
    differ = sum(a != b for a, b in zip(first, second))
    assert 0 < differ < n
    # Evaluation of the same batch augments nothing and keeps one view.
    ev = pre(pseudo_collate(items), training=False)
    assert len(ev['inputs']['views']) == 1
    assert not any(flip_pattern(ev['inputs']['views'][0], uniform))
    assert not any(flip_pattern(ev['inputs']['balanced'], balanced))


@pytest.mark.parametrize('separate', [False, True])
def test_uniform_and_balanced_rows_draw_independently(hub, separate):
    # The balanced image of each pair is the uniform image itself: with one
    # shared draw (or one stream reused) both rows would flip alike.
    set_step(hub, it=3)
    n = 64
    items = pair_items(n, views=1, size=(3, 6), same_image=True)
    images = [item['inputs']['views'][0] for item in items]
    pre = HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        batch_transforms=FLIP,
        balanced_transforms=FLIP if separate else None)
    out = pre(pseudo_collate(items), training=True)
    uniform = flip_pattern(out['inputs']['views'][0], images)
    balanced = flip_pattern(out['inputs']['balanced'], images)
    assert 0 < sum(uniform) < n and 0 < sum(balanced) < n
    assert uniform != balanced


def test_balanced_transforms_apply_to_balanced_rows_only(hub):
    set_step(hub, it=1)
    items = pair_items(8, views=2)
    pre = HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        balanced_transforms=[dict(type='BatchRandomFlip', prob=1.0)])
    out = pre(pseudo_collate(items), training=True)
    assert all(
        flip_pattern(out['inputs']['balanced'],
                     [i['inputs']['balanced'] for i in items]))
    for v in range(2):
        assert not any(
            flip_pattern(out['inputs']['views'][v],
                         [i['inputs']['views'][v] for i in items]))


def augmented(pre, items):
    out = pre(pseudo_collate(copy.deepcopy(items)), training=True)
    return torch.cat(out['inputs']['views'] + [out['inputs']['balanced']])


def test_draws_follow_the_message_hub_step(hub):
    items = pair_items(32, views=1, size=(3, 6))
    pre = HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        num_views=2,
        batch_transforms=[
            dict(type='BatchRandomCrop', crop_size=(3, 6), padding=1),
            dict(type='BatchRandomFlip', prob=0.5)
        ])
    set_step(hub, it=10, epoch=1)
    first = augmented(pre, items)
    torch.manual_seed(123)  # torch's global generator plays no part
    assert torch.equal(augmented(pre, items), first)
    for key, value in (('iter', 11), ('epoch', 2), ('seed', 8)):
        set_step(hub, it=10, epoch=1)
        hub.update_info(key, value)
        assert not torch.equal(augmented(pre, items), first), key
    set_step(hub, it=10, epoch=1)  # a resumed run at the same step
    assert torch.equal(augmented(pre, items), first)


def test_outside_a_training_loop_the_global_generator_draws(hub):
    assert hub.get_info('iter') is None
    items = pair_items(32, views=1, size=(3, 6))
    pre = HybridDataPreprocessor(
        mean=MEAN, std=STD, num_views=2, batch_transforms=FLIP)
    torch.manual_seed(0)
    first = augmented(pre, items)
    second = augmented(pre, items)
    torch.manual_seed(0)
    assert torch.equal(augmented(pre, items), first)
    assert not torch.equal(second, first)


def test_images_of_different_sizes_refused():
    items = pair_items(3, views=1)
    items[1]['inputs']['balanced'] = torch.zeros(3, 6, 5, dtype=torch.uint8)
    with pytest.raises(
            ValueError, match=r'one size.*\[\(3, 4, 5\), \(3, 6, 5\)\]'):
        HybridDataPreprocessor(
            mean=MEAN, std=STD)(
                pseudo_collate(items), training=True)


def odd_single_items():
    """Four single images with their files; the third is of another size."""
    items = single_items(4)
    items[2]['inputs'] = torch.zeros(3, 8, 8, dtype=torch.uint8)
    for k, item in enumerate(items):
        item['data_samples'].set_metainfo(dict(img_path=f'dir/img{k}.png'))
    return items


@pytest.mark.parametrize('training,kwargs', [
    (False, {}),
    (True, {}),
    (True, dict(balanced_transforms=FLIP)),
    (True, dict(balanced_transforms=FLIP, pad_to_same_size=True)),
])
def test_single_images_of_another_size_refused_naming_the_file(
        training, kwargs):
    """Validation / test batches (padded silently before), plain training
    batches, and batches augmented here: the sizes and the odd file are
    named. Padding is offered only where it is possible."""
    pre = HybridDataPreprocessor(mean=MEAN, std=STD, **kwargs)
    with pytest.raises(ValueError) as info:
        pre(pseudo_collate(odd_single_items()), training=training)
    message = str(info.value)
    assert re.search(
        r'one size, got sizes \[\(3, 4, 5\), \(3, 8, 8\)\]: '
        r'3 of \(3, 4, 5\), and \(3, 8, 8\) \(dir/img2\.png\)',
        message), message
    assert ('pad_to_same_size=True' in message) == ('balanced_transforms'
                                                    not in kwargs)


def test_pad_to_same_size_pads_single_images_as_cls_data_preprocessor():
    items = odd_single_items()
    ours = HybridDataPreprocessor(
        mean=MEAN, std=STD, pad_to_same_size=True, pad_value=-2.0)(
            pseudo_collate(copy.deepcopy(items)), training=False)
    assert ours['inputs'].shape == (4, 3, 8, 8)
    for k, item in enumerate(items):
        expected = torch.full((3, 8, 8), -2.0)
        h, w = item['inputs'].shape[1:]
        expected[:, :h, :w] = by_hand(item['inputs'])
        torch.testing.assert_close(ours['inputs'][k], expected)


def test_odd_image_of_a_hybrid_batch_is_named():
    items = pair_items(3, views=2)
    items[2]['inputs']['views'][1] = torch.zeros(3, 6, 5, dtype=torch.uint8)
    items[2]['data_samples']['uniform'].set_metainfo(
        dict(img_path='train/cat/7.png'))
    with pytest.raises(
            ValueError,
            match=r'2 of \(3, 4, 5\), and '
            r'\(3, 6, 5\) \(train/cat/7\.png\)'):
        HybridDataPreprocessor(
            mean=MEAN, std=STD)(
                pseudo_collate(items), training=True)
    # Without a file, the image is named by its index in the dataset.
    items[2]['data_samples']['uniform'] = DataSample(
        metainfo=dict(sample_idx=41)).set_gt_label(2)
    with pytest.raises(ValueError, match=r'\(3, 6, 5\) \(sample_idx 41\)'):
        HybridDataPreprocessor(
            mean=MEAN, std=STD)(
                pseudo_collate(items), training=False)


@pytest.mark.parametrize('value', [1, 'yes', None])
def test_bad_pad_to_same_size(value):
    with pytest.raises(
            TypeError, match='pad_to_same_size=.* must be True or False'):
        HybridDataPreprocessor(pad_to_same_size=value)


def mixup_preprocessor(augments=dict(type='Mixup', alpha=0.8)):
    return HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        num_classes=20,
        batch_augments=dict(augments=augments))


def test_batch_augments_mix_the_balanced_part_of_a_hybrid_batch(hub):
    n = 6
    items = pair_items(n)
    set_step(hub, it=3)
    out = mixup_preprocessor()(pseudo_collate(items), training=True)
    # The views, which the feature head reads, are not mixed.
    for v, view in enumerate(out['inputs']['views']):
        for k in range(n):
            torch.testing.assert_close(view[k],
                                       by_hand(items[k]['inputs']['views'][v]))
    uniform_scores = torch.stack(
        [s.gt_score for s in out['data_samples']['uniform']])
    assert torch.equal(uniform_scores, torch.eye(20)[:n])  # one-hot, unmixed
    # Every balanced row is lam * x_i + (1 - lam) * x_j with the scores
    # lam * onehot(label_i) + (1 - lam) * onehot(label_j); the balanced
    # labels (10 + k) are distinct, so lam and j are read off the scores.
    plain = [by_hand(item['inputs']['balanced']) for item in items]
    balanced, samples = out['inputs']['balanced'], out['data_samples'][
        'balanced']
    lams = set()
    for i, sample in enumerate(samples):
        score = sample.gt_score
        lam = float(score[10 + i])
        others = [c for c in range(20) if c != 10 + i and score[c] > 0]
        j = others[0] - 10 if others else i
        assert len(others) <= 1 and abs(float(score.sum()) - 1) < 1e-6
        torch.testing.assert_close(balanced[i],
                                   lam * plain[i] + (1 - lam) * plain[j])
        if j != i:  # a row mixed with itself is itself, score one-hot
            lams.add(round(lam, 6))
    assert len(lams) == 1 and 0 < lams.pop() < 1  # one lam per batch


def test_batch_augments_draw_what_the_step_says(hub):
    pre = mixup_preprocessor(
        [dict(type='Mixup', alpha=0.8),
         dict(type='CutMix', alpha=1.0)])

    def mix(it):
        set_step(hub, it=it)
        out = pre(pseudo_collate(pair_items(8)), training=True)
        return out['inputs']['balanced'], torch.stack(
            [s.gt_score for s in out['data_samples']['balanced']])

    np_before, torch_before = np.random.get_state()[1], torch.get_rng_state()
    first = mix(5)
    # The global generators are left as they were ...
    assert np.array_equal(np.random.get_state()[1], np_before)
    assert torch.equal(torch.get_rng_state(), torch_before)
    # ... whatever they hold, the same step mixes alike, another differently.
    np.random.seed(123)
    torch.manual_seed(123)
    again, other = mix(5), mix(6)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(first[1], other[1])


def test_batch_augments_refused_for_multi_view_batches():
    pre = mixup_preprocessor()
    views = pseudo_collate([
        dict(
            inputs=item['inputs']['views'] * 2,
            data_samples=item['data_samples']['uniform'])
        for item in pair_items(2, views=1)
    ])
    with pytest.raises(ValueError, match='not multi-view batches'):
        pre(views, training=True)
    # Evaluation of such a batch is fine.
    assert len(pre(views, training=False)['inputs']) == 2
    # Single-image training batches keep Mixup: the scores are mixed.
    single = pseudo_collate([
        dict(
            inputs=item['inputs']['balanced'],
            data_samples=item['data_samples']['balanced'])
        for item in pair_items(4, seed=3)
    ])
    mixed = pre(single, training=True)
    scores = torch.stack([s.gt_score for s in mixed['data_samples']])
    assert (scores > 0).sum(dim=1).max() == 2


def test_batch_augments_need_num_classes():
    with pytest.raises(
            ValueError, match='need num_classes, got '
            'num_classes=None'):
        HybridDataPreprocessor(
            batch_augments=dict(augments=dict(type='Mixup', alpha=1.)))


def single_items(n, size=(4, 5), seed=1):
    g = torch.Generator().manual_seed(seed)
    return [
        dict(
            inputs=torch.randint(
                0, 256, (3, *size), generator=g, dtype=torch.uint8),
            data_samples=DataSample().set_gt_label(k)) for k in range(n)
    ]


@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
@pytest.mark.parametrize('key', ['balanced_transforms', 'batch_transforms'])
def test_single_image_training_batch_gets_balanced_transforms(
        collate, key, hub):
    # balanced_transforms (by default: batch_transforms) in training only.
    set_step(hub, it=0)
    items = single_items(4)
    pre = HybridDataPreprocessor(
        mean=MEAN, std=STD, **{key: [dict(type='BatchRandomFlip', prob=1.0)]})
    train = pre(collate(copy.deepcopy(items)), training=True)['inputs']
    test = pre(collate(copy.deepcopy(items)), training=False)['inputs']
    for k, item in enumerate(items):
        torch.testing.assert_close(train[k], by_hand(flipped(item['inputs'])))
        torch.testing.assert_close(test[k], by_hand(item['inputs']))


def test_single_image_training_batch_without_balanced_transforms(hub):
    # batch_transforms for the views only: the single images stay as they
    # are.
    set_step(hub, it=0)
    items = single_items(4)
    pre = HybridDataPreprocessor(
        mean=MEAN,
        std=STD,
        batch_transforms=[dict(type='BatchRandomFlip', prob=1.0)],
        balanced_transforms=[])
    out = pre(pseudo_collate(items), training=True)['inputs']
    for k, item in enumerate(items):
        torch.testing.assert_close(out[k], by_hand(item['inputs']))


@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
def test_single_view_equals_cls_data_preprocessor(collate):
    kwargs = dict(
        mean=MEAN,
        std=STD,
        to_rgb=True,
        pad_size_divisor=4,
        to_onehot=True,
        num_classes=5)
    items = single_items(4, size=(6, 6))
    ours = HybridDataPreprocessor(**kwargs)(
        collate(copy.deepcopy(items)), training=False)
    ref = ClsDataPreprocessor(**kwargs)(
        collate(copy.deepcopy(items)), training=False)
    torch.testing.assert_close(ours['inputs'], ref['inputs'])
    assert ours['inputs'].shape == (4, 3, 8, 8)
    for a, b in zip(ours['data_samples'], ref['data_samples']):
        assert torch.equal(a.gt_label, b.gt_label)
        assert torch.equal(a.gt_score, b.gt_score)


@pytest.mark.parametrize('training', [False, True])
def test_multi_view_list_gives_per_view_tensors(training):
    # MultiView with an ordinary sampler: inputs is a list of per-view
    # lists; mmpretrain's convention is a list of per-view tensors.
    g = torch.Generator().manual_seed(5)
    items = [
        dict(
            inputs=[
                torch.randint(
                    0, 256, (3, 4, 5), generator=g, dtype=torch.uint8)
                for _ in range(2)
            ],
            data_samples=DataSample().set_gt_label(k)) for k in range(3)
    ]
    pre = HybridDataPreprocessor(mean=MEAN, std=STD, to_rgb=True)
    out = pre(pseudo_collate(copy.deepcopy(items)), training=training)
    assert isinstance(out['inputs'], list) and len(out['inputs']) == 2
    for v in range(2):
        assert out['inputs'][v].shape == (3, 3, 4, 5)
        for k in range(3):
            torch.testing.assert_close(out['inputs'][v][k],
                                       by_hand(items[k]['inputs'][v], True))
    assert [int(s.gt_label) for s in out['data_samples']] == [0, 1, 2]


def test_num_views_other_than_the_data_refused():
    pre = HybridDataPreprocessor(mean=MEAN, std=STD, num_views=2)
    batch = pseudo_collate(pair_items(3, views=3))
    with pytest.raises(
            ValueError,
            match=r'num_views=2 is not allowed; it '
            'must be 3, the views of each uniform image'):
        pre(batch, training=True)


@pytest.mark.parametrize('num_views', [0, -1, True, 2.0, '2'])
def test_bad_num_views(num_views):
    with pytest.raises(ValueError, match='num_views'):
        HybridDataPreprocessor(num_views=num_views)


def viewing(**kwargs):
    """A preprocessor that views single images, as
    HybridClassifier(cls_input='uniform') makes its preprocessor."""
    pre = HybridDataPreprocessor(**kwargs)
    pre.view_single_images = True
    return pre


# view_single_images: a batch of single images viewed num_views times in
# training (HybridClassifier(cls_input='uniform') sets it).
@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
def test_view_single_images_makes_num_views_views(collate, hub):
    set_step(hub, it=3)
    n = 64
    items = single_items(n, size=(3, 6))
    images = [item['inputs'] for item in items]
    assert all(not torch.equal(img, flipped(img)) for img in images)
    pre = viewing(
        mean=MEAN,
        std=STD,
        num_views=2,
        batch_transforms=FLIP,
        balanced_transforms=[])
    out = pre(collate(copy.deepcopy(items)), training=True)
    # mmpretrain's multi-view layout: a list of V tensors of the N images.
    views = out['inputs']
    assert isinstance(views, list) and len(views) == 2
    assert all(view.shape == (n, 3, 3, 6) for view in views)
    # The views are made with batch_transforms (not balanced_transforms),
    # every row with its own draw.
    first, second = flip_pattern(views[0],
                                 images), flip_pattern(views[1], images)
    assert 0 < sum(first) < n and 0 < sum(second) < n
    assert 0 < sum(a != b for a, b in zip(first, second)) < n
    assert [int(s.gt_label) for s in out['data_samples']] == list(range(n))
    # Evaluation: one view, as ClsDataPreprocessor gives it.
    ev = pre(collate(copy.deepcopy(items)), training=False)['inputs']
    assert isinstance(ev, torch.Tensor) and ev.shape == (n, 3, 3, 6)
    for k in range(n):
        torch.testing.assert_close(ev[k], by_hand(images[k]))


def test_view_single_images_without_transforms_repeats_the_image(hub):
    set_step(hub, it=0)
    items = single_items(3)
    out = viewing(
        mean=MEAN, std=STD, num_views=3)(
            pseudo_collate(items), training=True)
    assert len(out['inputs']) == 3
    for view in out['inputs']:
        for k, item in enumerate(items):
            torch.testing.assert_close(view[k], by_hand(item['inputs']))


def test_multi_view_default_collate_gives_per_view_tensors(hub):
    # A per-sample MultiView batch stacked by default_collate: a list of V
    # (N, C, H, W) tensors, handed on as V normalised tensors.
    g = torch.Generator().manual_seed(5)
    items = [
        dict(
            inputs=[
                torch.randint(
                    0, 256, (3, 4, 5), generator=g, dtype=torch.uint8)
                for _ in range(2)
            ],
            data_samples=DataSample().set_gt_label(k)) for k in range(3)
    ]
    pre = viewing(mean=MEAN, std=STD, num_views=2)
    out = pre(default_collate(copy.deepcopy(items)), training=True)
    assert isinstance(out['inputs'], list) and len(out['inputs']) == 2
    for v in range(2):
        for k in range(3):
            torch.testing.assert_close(out['inputs'][v][k],
                                       by_hand(items[k]['inputs'][v]))
    assert [int(s.gt_label) for s in out['data_samples']] == [0, 1, 2]


def test_view_single_images_is_not_a_setting():
    """The model that reads the views sets it (one declaration of the
    classifier's mode); the preprocessor's config cannot."""
    assert HybridDataPreprocessor(num_views=2).view_single_images is False
    with pytest.raises(TypeError, match='view_single_images'):
        HybridDataPreprocessor(num_views=2, view_single_images=True)
    # Mixing views the feature head reads is refused at the step too.
    pre = viewing(
        num_views=2,
        num_classes=4,
        batch_augments=dict(augments=dict(type='Mixup', alpha=1.)))
    with pytest.raises(ValueError, match='not multi-view batches'):
        pre(pseudo_collate(single_items(2)), training=True)
