"""Batch transforms: pixel-exact against their per-sample counterparts
(mmpretrain's RandomCrop and ColorJitter, mmcv's RandomFlip and
RandomGrayscale) given the same parameters, parameter distributions,
reproducibility, dtypes, errors and registration.

The counterparts work on one HWC numpy image; the parameters the batch
transform drew for an image are forced on them (their random draws are
monkeypatched), so each expectation comes from the counterpart's own code.
"""
import math

import mmcv
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from mmcv.transforms import RandomFlip, RandomGrayscale
from mmpretrain.datasets.transforms import ColorJitter, RandomCrop
from mmpretrain.models.utils import ClsDataPreprocessor

from mmlt_hybrid.models.utils import HybridDataPreprocessor
from mmlt_hybrid.models.utils.batch_transforms import (
    BATCH_TRANSFORMS,
    BaseBatchTransform,
    BatchColorJitter,
    BatchRandomCrop,
    BatchRandomFlip,
    BatchRandomGrayscale,
    apply_batch_transforms,
    build_batch_transforms,
)

pytestmark = pytest.mark.filterwarnings('ignore::UserWarning')

# Stated tolerance of BatchColorJitter with hue: mean absolute difference
# from the counterpart, in grey levels (brightness/contrast/saturation alone
# are pixel-exact).
JITTER_TOLERANCE = 1.0


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """The tensors here are tiny: one thread spares the (large, on a busy
    machine) cost of waking others for every op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_images(batch_size=16, size=32, seed=0) -> torch.Tensor:
    """Random uint8 BGR images ``(B, 3, size, size)``; the first two are
    all black and all white, the third one grey."""
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(
        0, 256, (batch_size, 3, size, size), generator=g, dtype=torch.uint8)
    imgs[0], imgs[1], imgs[2] = 0, 255, 128
    return imgs


def to_hwc(img: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(img.permute(1, 2, 0).numpy())


def to_chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def chi2_bound(dof: int, z: float = 3.719) -> float:
    """Upper 1e-4 quantile of chi-square with ``dof`` degrees of freedom
    (Wilson-Hilferty; z = 3.719 is the normal 1e-4 quantile)."""
    a = 2 / (9 * dof)
    return dof * (1 - a + z * math.sqrt(a))**3


def chi2(counts: torch.Tensor) -> float:
    expected = counts.sum().item() / counts.numel()
    return ((counts.double() - expected)**2 / expected).sum().item()


def rate_bound(p: float, n: int, z: float = 5.) -> float:
    """``z`` standard deviations of the mean of ``n`` Bernoulli(p)."""
    return z * math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------- counterparts


@pytest.mark.parametrize('crop_size, padding, pad_val', [
    (32, 4, 0),
    ((28, 30), (1, 2, 3, 4), (7, 8, 9)),
    (24, None, 0),
    ((30, 36), (2, 3), 255),
])
def test_crop_matches_random_crop(monkeypatch, crop_size, padding, pad_val):
    """A single pad_val fills every channel; mmcv.impad (OpenCV) fills
    the first channel only with a single number, so it is given one per
    channel."""
    imgs = make_images()
    ours = BatchRandomCrop(crop_size, padding=padding, pad_val=pad_val)
    params = ours.sample_params(len(imgs), 'cpu', gen())
    out = ours.apply(imgs, params)
    top, left, _, _ = ours.crop_offsets(params, 32, 32)
    assert len(set(zip(top.tolist(), left.tolist()))) > 1

    if not isinstance(pad_val, tuple):
        pad_val = (pad_val, ) * 3
    theirs = RandomCrop(crop_size, padding=padding, pad_val=pad_val)
    for i, img in enumerate(imgs):
        offsets = iter([top[i].item(), left[i].item()])
        monkeypatch.setattr(np.random, 'randint',
                            lambda low, high: next(offsets))
        expected = theirs.transform(dict(img=to_hwc(img)))['img']
        assert torch.equal(out[i], to_chw(expected))


@pytest.mark.parametrize('direction', ['horizontal', 'vertical'])
def test_flip_matches_random_flip(direction):
    imgs = make_images()
    ours = BatchRandomFlip(prob=0.5, direction=direction)
    params = ours.sample_params(len(imgs), 'cpu', gen())
    out = ours.apply(imgs, params)
    assert 0 < params['flip'].sum() < len(imgs)

    theirs = RandomFlip(prob=0.5, direction=direction)
    for i, img in enumerate(imgs):
        flip = params['flip'][i].item()
        theirs._choose_direction = lambda: direction if flip else None
        expected = theirs.transform(dict(img=to_hwc(img)))['img']
        assert torch.equal(out[i], to_chw(expected))


@pytest.mark.parametrize('weights', [(0.299, 0.587, 0.114), (1., 1., 1.),
                                     (1, 2, 1)])
def test_grayscale_matches_random_grayscale(weights):
    imgs = make_images()
    ours = BatchRandomGrayscale(
        prob=0.5, keep_channels=True, channel_weights=weights)
    params = ours.sample_params(len(imgs), 'cpu', gen(1))
    params['gray'][:3] = True  # the black, white and grey images
    out = ours.apply(imgs, params)
    assert not params['gray'].all()

    theirs = RandomGrayscale(
        prob=0.5, keep_channels=True, channel_weights=weights)
    for i, img in enumerate(imgs):
        gray = params['gray'][i].item()
        theirs._random_prob = lambda: 0. if gray else 1.
        expected = theirs.transform(dict(img=to_hwc(img)))['img']
        assert torch.equal(out[i], to_chw(expected))


def force_color_jitter(theirs, params, i, with_hue):
    """Make ``theirs`` (mmpretrain's ColorJitter) use image ``i``'s
    order and factors."""
    factors = [
        params[k][i].item()
        for k in ('brightness', 'contrast', 'saturation', 'hue')
    ]
    if not with_hue:
        factors[3] = None
    order = params['order'][i].numpy()
    theirs._rand_params = lambda: (order, *factors)


def torchvision_hue(img, hue_factor, backend=None):
    """mmcv.adjust_hue (BGR numpy) by torchvision's adjust_hue."""
    rgb = to_chw(img[..., ::-1])
    return to_hwc(TF.adjust_hue(rgb, hue_factor))[..., ::-1]


def test_color_jitter_matches_color_jitter_pixel_exact():
    """Brightness, contrast and saturation (with clamping): pixel-exact."""
    imgs = make_images()
    ours = BatchColorJitter(brightness=0.8, contrast=0.8, saturation=0.8)
    params = ours.sample_params(len(imgs), 'cpu', gen())
    out = ours.apply(imgs, params)
    assert len({tuple(o) for o in params['order'].tolist()}) > 4

    theirs = ColorJitter(brightness=0.8, contrast=0.8, saturation=0.8)
    for i, img in enumerate(imgs):
        force_color_jitter(theirs, params, i, with_hue=False)
        expected = to_chw(theirs.transform(dict(img=to_hwc(img)))['img'])
        diff = (out[i].int() - expected.int()).abs()
        assert diff.float().mean() <= JITTER_TOLERANCE
        assert torch.equal(out[i], expected)


def test_color_jitter_with_hue_within_tolerance(monkeypatch):
    """All four ops in random order; the counterpart's hue is
    torchvision's (mmcv 2.2's pillow adjust_hue fails on negative
    factors under numpy 2)."""
    monkeypatch.setattr(mmcv, 'adjust_hue', torchvision_hue)
    imgs = make_images()
    ours = BatchColorJitter(0.4, 0.4, 0.4, hue=0.5)
    params = ours.sample_params(len(imgs), 'cpu', gen())
    out = ours.apply(imgs, params)
    assert (params['hue'] < 0).any() and (params['hue'] > 0).any()

    theirs = ColorJitter(0.4, 0.4, 0.4, hue=0.5)
    for i, img in enumerate(imgs):
        force_color_jitter(theirs, params, i, with_hue=True)
        expected = to_chw(theirs.transform(dict(img=to_hwc(img)))['img'])
        diff = (out[i].int() - expected.int()).abs()
        assert diff.float().mean() <= JITTER_TOLERANCE


def test_hue_matches_torchvision():
    """Hue alone: on float images the HSV round trip agrees with
    torchvision's (which works in float32, hence 1e-3 of a grey level); on
    uint8 images they differ by at most 1 (we round, torchvision scales by
    255.999 and truncates)."""
    imgs = make_images()
    ours = BatchColorJitter(hue=0.5)
    params = ours.sample_params(len(imgs), 'cpu', gen())
    out = ours.apply(imgs, params)
    out_float = ours.apply(imgs.double(), params)
    for i, img in enumerate(imgs):
        hue = params['hue'][i].item()
        expected = to_chw(torchvision_hue(to_hwc(img), hue))
        assert (out[i].int() - expected.int()).abs().max() <= 1
        rgb = img.flip(0).double() / 255
        expected = TF.adjust_hue(rgb, hue).flip(0) * 255
        torch.testing.assert_close(out_float[i], expected, atol=1e-3, rtol=0)


def test_color_jitter_prob_and_identity():
    imgs = make_images()
    ours = BatchColorJitter(0.4, 0.4, 0.4, 0.1, prob=0.5)
    params = ours.sample_params(len(imgs), 'cpu', gen(3))
    jittered = params['jittered']
    assert 0 < jittered.sum() < len(imgs)
    for x in (imgs, imgs.float()):
        out = ours.apply(x, params)
        assert out.dtype == x.dtype
        assert torch.equal(out[~jittered], x[~jittered])
        assert all(not torch.equal(out[i], x[i]) for i in range(3, len(x))
                   if jittered[i])
    # All ops off: the identity.
    assert torch.equal(BatchColorJitter()(imgs, gen()), imgs)


# ------------------------------------------------------------- distributions


def test_crop_offsets_uniform():
    ours = BatchRandomCrop(32, padding=4)
    n = 81 * 400
    top, left, h, w = ours.crop_offsets(
        ours.sample_params(n, 'cpu', gen()), 32, 32)
    assert (h, w) == (32, 32)
    assert top.min() == left.min() == 0 and top.max() == left.max() == 8
    counts = torch.bincount(top * 9 + left, minlength=81)
    assert counts.numel() == 81
    assert chi2(counts) < chi2_bound(80)


@pytest.mark.parametrize('transform, key, p', [
    (BatchRandomFlip(0.5), 'flip', 0.5),
    (BatchRandomGrayscale(0.2, True, (0.299, 0.587, 0.114)), 'gray', 0.2),
    (BatchColorJitter(0.4, 0.4, 0.4, 0.1, prob=0.8), 'jittered', 0.8),
])
def test_rates(transform, key, p):
    n = 20000
    rate = transform.sample_params(n, 'cpu', gen())[key].double().mean()
    assert abs(rate.item() - p) < rate_bound(p, n)


def test_color_jitter_order_and_factor_ranges():
    ours = BatchColorJitter((0.5, 1.5), 0.4, 0.2, 0.1)
    n = 24 * 500
    params = ours.sample_params(n, 'cpu', gen())
    order = params['order']
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(n, 4))
    code = sum(order[:, k] * 4**k for k in range(4))  # one per permutation
    counts = torch.bincount(code, minlength=256)
    counts = counts[counts > 0]
    assert counts.numel() == 24
    assert chi2(counts) < chi2_bound(23)
    for key, (low, high) in dict(
            brightness=(0.5, 1.5),
            contrast=(0.6, 1.4),
            saturation=(0.8, 1.2),
            hue=(-0.1, 0.1)).items():
        f = params[key]
        assert low <= f.min() and f.max() <= high
        # The mean of n uniforms: within 5 standard deviations.
        sd = (high - low) / math.sqrt(12 * n)
        assert abs(f.double().mean().item() - (low + high) / 2) < 5 * sd
    # An op that is off gets the identity factor; big b clips at 0.
    params = BatchColorJitter(brightness=3).sample_params(8, 'cpu', gen())
    assert (params['hue'] == 0).all() and (params['contrast'] == 1).all()
    assert BatchColorJitter(brightness=3).brightness == (0., 4.)


# ------------------------------------------------ reproducibility and dtypes

ALL = [
    BatchRandomCrop(32, padding=4),
    BatchRandomFlip(0.5),
    BatchRandomGrayscale(0.5, True, (0.299, 0.587, 0.114)),
    BatchColorJitter(0.4, 0.4, 0.4, 0.1, prob=0.8),
]


@pytest.mark.parametrize('transform', ALL, ids=repr)
def test_reproducible_and_per_row(transform):
    imgs = make_images(16)
    out = transform(imgs, gen(5))
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    assert torch.equal(out, transform(imgs, gen(5)))
    assert not torch.equal(out, transform(imgs, gen(6)))
    # Every row draws its own parameters: they are not all equal.
    params = transform.sample_params(16, 'cpu', gen(5))
    for value in params.values():
        assert not (value == value[:1]).all()


@pytest.mark.parametrize('transform', ALL[:2], ids=repr)
def test_float_input_same_as_uint8(transform):
    imgs = make_images()
    for dtype in (torch.float32, torch.float16):
        out = transform(imgs.to(dtype), gen(2))
        assert out.dtype == dtype
        assert torch.equal(out, transform(imgs, gen(2)).to(dtype))


def test_crop_output_size_and_global_generator():
    imgs = make_images(4, size=20)
    assert BatchRandomCrop((12, 16), 2)(imgs).shape == (4, 3, 12, 16)
    # Larger than the padded image: shrunk to it, as RandomCrop does.
    assert BatchRandomCrop(30, 2)(imgs).shape == (4, 3, 24, 24)
    torch.manual_seed(0)
    first = BatchRandomCrop(16, 4)(imgs)
    torch.manual_seed(0)
    assert torch.equal(first, BatchRandomCrop(16, 4)(imgs))


# ------------------------------------------------------ errors and registry


@pytest.mark.parametrize('cls, kwargs, key', [
    (BatchRandomCrop, dict(crop_size=32, padding=-1), 'padding=-1'),
    (BatchRandomCrop, dict(crop_size=32, padding=(1, 2, 3)), 'padding='),
    (BatchRandomCrop, dict(crop_size=0), 'crop_size=0'),
    (BatchRandomCrop, dict(crop_size=(32, -1)), 'crop_size='),
    (BatchRandomCrop, dict(crop_size=32, pad_val='x'), 'pad_val='),
    (BatchRandomFlip, dict(prob=1.5), 'prob=1.5'),
    (BatchRandomFlip, dict(direction='diagonal'), "direction='diagonal'"),
    (BatchRandomGrayscale, dict(prob=-0.1), 'prob=-0.1'),
    (BatchRandomGrayscale, dict(keep_channels=False), 'keep_channels=False'),
    (BatchRandomGrayscale, dict(channel_weights=(1, -1, 1)),
     'channel_weights='),
    (BatchColorJitter, dict(brightness=-0.1), 'brightness=-0.1'),
    (BatchColorJitter, dict(contrast=(1.2, 0.8)), 'contrast='),
    (BatchColorJitter, dict(saturation=(-0.5, 1.)), 'saturation='),
    (BatchColorJitter, dict(hue=0.6), 'hue=0.6'),
    (BatchColorJitter, dict(prob=2), 'prob=2'),
])
def test_bad_arguments(cls, kwargs, key):
    with pytest.raises(ValueError, match=f'{cls.__name__}: .*') as err:
        cls(**kwargs)
    assert key in str(err.value) and 'not allowed' in str(err.value)


def test_input_errors():
    imgs = make_images(4)
    with pytest.raises(ValueError, match='pad_val'):
        BatchRandomCrop(32, 4, pad_val=(1, 2))(imgs)
    with pytest.raises(ValueError, match='channel_weights'):
        BatchRandomGrayscale(1., True, (1, 1))(imgs)
    with pytest.raises(ValueError, match='3-channel'):
        BatchColorJitter(0.4)(imgs[:, :2])


def test_registry_and_build_helpers():
    crop = BATCH_TRANSFORMS.build(
        dict(type='BatchRandomCrop', crop_size=32, padding=4))
    assert isinstance(crop, BatchRandomCrop)
    assert repr(crop) == ('BatchRandomCrop(crop_size=(32, 32), '
                          'padding=(4, 4, 4, 4), pad_val=0)')

    def invert(imgs, generator):
        return 255 - imgs

    transforms = build_batch_transforms(
        [dict(type='BatchRandomFlip', prob=1.), invert])
    assert isinstance(transforms[0], BaseBatchTransform)
    assert transforms[1] is invert
    imgs = make_images(4)
    assert torch.equal(
        apply_batch_transforms(transforms, imgs, gen()), 255 - imgs.flip(-1))
    assert build_batch_transforms(None) == []
    with pytest.raises(TypeError, match=r'batch_transforms\[1\]'):
        build_batch_transforms([invert, 3])
    with pytest.raises(TypeError, match='list'):
        build_batch_transforms(dict(type='BatchRandomFlip'))


def not_registered(name: str, registry: str) -> str:
    """mmengine's message for a type missing from a registry."""
    return f'{name} is not in the [a-z_]+::{registry} registry'


@pytest.mark.parametrize(
    'preprocessor', [
        ClsDataPreprocessor,
        lambda **kwargs: HybridDataPreprocessor(num_views=2, **kwargs)
    ],
    ids=['ClsDataPreprocessor', 'HybridDataPreprocessor'])
def test_batch_transform_is_not_a_batch_augment(preprocessor):
    """A batch transform put in ``batch_augments`` is not found in
    mmpretrain's BATCH_AUGMENTS (the Mixup/CutMix registry)."""
    crop = dict(type='BatchRandomCrop', crop_size=32, padding=4)
    message = not_registered('BatchRandomCrop', 'batch augment')
    with pytest.raises(KeyError, match=message):
        preprocessor(num_classes=10, batch_augments=dict(augments=[crop]))


def test_batch_augment_is_not_a_batch_transform():
    """Mixup put in ``batch_transforms`` is not found in
    BATCH_TRANSFORMS."""
    mixup = dict(type='Mixup', alpha=1.)
    with pytest.raises(
            KeyError, match=not_registered('Mixup', 'batch transform')):
        HybridDataPreprocessor(num_views=2, batch_transforms=[mixup])
    with pytest.raises(
            KeyError, match=not_registered('Mixup', 'batch transform')):
        build_batch_transforms([mixup])


@pytest.mark.parametrize('dtype', [torch.uint8, torch.float32])
@pytest.mark.parametrize(
    'transform',
    ALL + [
        BatchRandomCrop((28, 30), padding=(1, 2), pad_val=(1, 2, 3)),
        BatchRandomFlip(0.5, 'vertical'),
    ],
    ids=repr)
def test_no_value_read_back(transform, dtype):
    """Meta tensors have no values, so reading one back to the host (as
    .item(), bool(t) or boolean-mask indexing do) raises: a transform that
    runs on them never synchronises on CUDA."""
    with pytest.raises(RuntimeError):
        torch.zeros(1, device='meta').item()
    imgs = torch.empty(4, 3, 32, 32, dtype=dtype, device='meta')
    out = transform(imgs)
    assert out.device.type == 'meta' and out.dtype == dtype
