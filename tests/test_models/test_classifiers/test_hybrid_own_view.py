"""HybridClassifier(cls_input='own_view'): the feature head reads V views of
the N uniform images, the classifier one more view of each, made by the
preprocessor with the classifier's transforms ((V + 1) N images a step, no
class-balanced batch); every row is an augmentation of the image the
sampler drew, with its label; wrong batches are refused."""
import uuid

import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from test_hybrid_classifier import (
    NUM_CLASSES,
    model_cfg,
    quiet_init_log,  # noqa: F401
)

import mmlt_hybrid  # noqa: F401  (registers the components)

#: The views: a horizontal flip with p 0.5; the classifier's view: grey
#: (ITU-R 601 weights) always, so the two kinds of rows are told apart.
FLIP = [dict(type='BatchRandomFlip', prob=0.5)]
GREY = [
    dict(
        type='BatchRandomGrayscale',
        prob=1.0,
        keep_channels=True,
        channel_weights=(0.299, 0.587, 0.114))
]


def build(**preprocessor):
    cfg = model_cfg(
        cls_input='own_view',
        data_preprocessor=dict(
            num_views=2,
            mean=[0.] * 3,
            std=[1.] * 3,
            batch_transforms=FLIP,
            balanced_transforms=GREY,
            **preprocessor))
    torch.manual_seed(0)
    return MODELS.build(cfg)


@pytest.fixture(autouse=True)
def step():
    hub = MessageHub.get_instance(f'own_view_{uuid.uuid4().hex}')
    for key, value in (('seed', 3), ('epoch', 0), ('iter', 5)):
        hub.update_info(key, value)
    yield hub


def single_batch(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = [
        dict(
            inputs=torch.randint(
                0, 256, (3, 4, 6), generator=g, dtype=torch.uint8),
            data_samples=DataSample().set_gt_label(k % NUM_CLASSES))
        for k in range(n)
    ]
    return items, default_collate(items)


def grey(img: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of a (3, H, W) uint8 image, rounded as uint8 and kept
    as 3 channels, written out."""
    w = (0.299, 0.587, 0.114)
    luma = sum(w[c] * img[c].double() for c in range(3))
    return luma.round().clamp(0, 255).to(torch.uint8).expand(3, -1, -1)


def test_every_row_is_a_view_of_the_drawn_image_with_its_label():
    model = build()
    pre = model.data_preprocessor
    assert pre.view_single_images and pre.classifier_view
    items, batch = single_batch()
    out = pre(batch, training=True)
    views, cls = out['inputs']['views'], out['inputs']['cls']
    assert len(views) == 2 and all(v.shape == (24, 3, 4, 6) for v in views)
    assert cls.shape == (24, 3, 4, 6)
    flips = []
    for view in views:
        for k, item in enumerate(items):
            image = item['inputs'].float()
            if torch.equal(view[k], image):
                flips.append(False)
            else:
                torch.testing.assert_close(
                    view[k], image.flip(-1), rtol=0, atol=0)
                flips.append(True)
    assert 0 < sum(flips) < len(flips)  # every row drew its own flip
    for k, item in enumerate(items):
        torch.testing.assert_close(
            cls[k], grey(item['inputs']).float(), rtol=0, atol=1.0)
    assert [int(s.gt_label) for s in out['data_samples']
            ] == [k % NUM_CLASSES for k in range(24)]
    # Evaluation: one plain view, as for any single-image batch.
    assert pre(
        single_batch()[1], training=False)['inputs'].shape == (24, 3, 4, 6)


def test_heads_read_their_rows_in_one_backbone_pass(monkeypatch):
    model = build()
    model.alpha = 0.25
    _, batch = single_batch(n=6)
    data = model.data_preprocessor(batch, training=True)
    views, cls = data['inputs']['views'], data['inputs']['cls']
    seen = {}
    monkeypatch.setattr(
        model.feat_head, 'loss', lambda feats, labels:
        (seen.update(feat=(feats, labels)) or dict(loss=feats[-1].sum())))
    monkeypatch.setattr(
        model.head, 'loss', lambda feats, samples:
        (seen.update(cls=(feats, samples)) or dict(loss=feats[-1].sum())))
    passes = []
    monkeypatch.setattr(
        model, 'extract_feat', lambda x: (passes.append(x.shape[0]) or (x.mean(
            (2, 3)), )))
    losses = model.loss(data['inputs'], data['data_samples'])
    assert passes == [3 * 6]  # (V + 1) N rows, one pass
    feat_feats, labels = seen['feat']
    cls_feats, samples = seen['cls']
    torch.testing.assert_close(feat_feats[0], torch.cat(views).mean((2, 3)))
    torch.testing.assert_close(cls_feats[0], cls.mean((2, 3)))
    assert labels.tolist() == [k % NUM_CLASSES for k in range(6)] * 2
    assert samples is not None and len(samples) == 6
    torch.testing.assert_close(losses['loss_feat'],
                               0.25 * torch.cat(views).mean((2, 3)).sum())
    torch.testing.assert_close(losses['loss_cls'], 0.75 * cls.mean(
        (2, 3)).sum())


def test_other_layouts_are_refused():
    model = build()
    model.alpha = 0.5
    views = [torch.randn(2, 3, 8, 8)] * 2
    samples = [DataSample().set_gt_label(0)] * 2
    with pytest.raises(
            ValueError,
            match=r"cls_input='own_view'\): the batch "
            r'has no classifier view \(cls\)'):
        model.loss(views, samples)
    with pytest.raises(ValueError, match=r"own_view'\): the batch has pairs"):
        model.loss(
            dict(views=views, balanced=views[0]),
            dict(uniform=samples, balanced=samples))


def test_own_view_needs_num_views_and_may_mix_the_classifier_view():
    with pytest.raises(
            ValueError, match=r"cls_input='own_view'.*num_views="
            r'None'):
        MODELS.build(model_cfg(cls_input='own_view', data_preprocessor=dict()))
    # Mixup / CutMix mix the classifier's own view only.
    model = build(
        num_classes=NUM_CLASSES,
        batch_augments=dict(augments=dict(type='Mixup', alpha=1.)))
    items, batch = single_batch(n=8)
    out = model.data_preprocessor(batch, training=True)
    scores = torch.stack([s.gt_score for s in out['data_samples']])
    assert not torch.equal(scores, scores.round())  # mixed scores
    for k, item in enumerate(items):  # the views are not mixed
        image = item['inputs'].float()
        assert any(
            torch.equal(out['inputs']['views'][0][k], im)
            for im in (image, image.flip(-1)))


def test_a_head_that_needs_the_classifier_weight_gets_it():
    """BCLHead declares needs_classifier_weight: the model hands it
    head.fc.weight, so the feature loss reaches the classifier's weight."""
    cfg = model_cfg(
        cls_input='own_view',
        data_preprocessor=dict(
            num_views=2, batch_transforms=FLIP, balanced_transforms=GREY))
    cfg['feat_head'] = dict(
        type='BCLHead',
        num_classes=NUM_CLASSES,
        in_channels=64,
        hid_channels=32,
        out_channels=16)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.alpha = 1.0  # the feature loss alone
    _, batch = single_batch(n=8)
    data = model.data_preprocessor(batch, training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    losses['loss_feat'].backward()
    assert model.head.fc.weight.grad is not None
    assert model.head.fc.weight.grad.abs().sum() > 0
    assert model.feat_head.needs_classifier_weight
