"""Batched, on-device image augmentations.

A batch transform does, for a whole batch ``(B, C, H, W)`` inside the data
preprocessor, what its per-sample counterpart in the data pipeline does for
each image: every image (row) draws its own random parameters. It works in
two steps:

- :meth:`~BaseBatchTransform.sample_params` draws one set of parameters per
  image, on the batch's device, from an optional :class:`torch.Generator`
  (None: torch's global generator);
- :meth:`~BaseBatchTransform.apply` applies them, deterministically.

Both use fixed-shape tensor operations only (``torch.where``, ``gather``,
index arithmetic): nothing is read back to the host, so the transforms run
unchanged, and without synchronising, on CUDA. Images are uint8 or floating
(on the 0-255 scale, i.e. not yet normalised); the output has the input's
dtype. Channels are in the order the data pipeline sees them (BGR for images
decoded by mmcv), as for the counterparts.

Example:
    >>> transforms = build_batch_transforms([
    ...     dict(type='BatchRandomCrop', crop_size=32, padding=4),
    ...     dict(type='BatchRandomFlip', prob=0.5),
    ... ])
    >>> imgs = apply_batch_transforms(transforms, imgs, generator)
"""
import math
import numbers
from typing import Callable, List, Optional, Sequence, Union

import torch
from torch import Tensor

from mmpretrain.models.utils.batch_augments import Mixup, RandomBatchAugment
from mmpretrain.registry import BATCH_AUGMENTS

from ...validation import check, check_choice, check_number


class BaseBatchTransform:
    """Base of the batch transforms.

    ``transform(imgs, generator)`` is
    ``transform.apply(imgs, transform.sample_params(B, imgs.device,
    generator))``. Subclasses define :meth:`sample_params`, :meth:`apply`
    and ``_repr_keys`` (the settings shown by ``repr``).
    """

    _repr_keys: tuple = ()

    def sample_params(self,
                      batch_size: int,
                      device: Union[str, torch.device],
                      generator: Optional[torch.Generator] = None) -> dict:
        """Draw the random parameters of ``batch_size`` images.

        Args:
            batch_size (int): Number of images.
            device (str | torch.device): Device of the batch.
            generator (torch.Generator, optional): Source of randomness, on
                ``device``. Defaults to None (torch's global generator).

        Returns:
            dict: Tensors with one entry (row) per image.
        """
        raise NotImplementedError

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        """Transform ``imgs`` with the given parameters.

        Args:
            imgs (Tensor): Images ``(B, C, H, W)``, uint8 or floating.
            params (dict): Parameters from :meth:`sample_params`.

        Returns:
            Tensor: Transformed images, of the dtype of ``imgs``.
        """
        raise NotImplementedError

    def __call__(self,
                 imgs: Tensor,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """Transform ``imgs``, each image with its own random parameters.

        Args:
            imgs (Tensor): Images ``(B, C, H, W)``, uint8 or floating.
            generator (torch.Generator, optional): Source of randomness, on
                the device of ``imgs``. Defaults to None (torch's global
                generator).

        Returns:
            Tensor: Transformed images, of the dtype of ``imgs``.
        """
        if not isinstance(generator, (torch.Generator, type(None))):
            # Called as a batch augment, with (inputs, batch_score).
            raise TypeError(
                f'{type(self).__name__}: got {type(generator).__name__} as '
                'generator; batch transforms belong in HybridDataPreprocessor'
                "'s `batch_transforms`, not in `batch_augments`.")
        params = self.sample_params(imgs.shape[0], imgs.device, generator)
        return self.apply(imgs, params)

    def __repr__(self) -> str:
        settings = ', '.join(f'{key}={getattr(self, key)!r}'
                             for key in self._repr_keys)
        return f'{type(self).__name__}({settings})'


def _uniform(batch_size: int, device, generator, *shape) -> Tensor:
    """``U[0, 1)`` samples of shape ``(batch_size, *shape)``."""
    return torch.rand(
        batch_size, *shape, device=device, generator=generator)


@BATCH_AUGMENTS.register_module()
class BatchRandomCrop(BaseBatchTransform):
    """Pad every image, then crop it at its own random offset.

    Batched counterpart of mmpretrain's ``RandomCrop`` (with its defaults
    ``pad_if_needed=False, padding_mode='constant'``): each image is padded
    with ``pad_val`` (``padding`` read as by :func:`mmcv.impad`) and cropped
    at an offset uniform over the ``(H' - h + 1) x (W' - w + 1)`` positions
    of the padded ``H' x W'`` image. As in the counterpart, a crop larger
    than the padded image is shrunk to it.

    ``sample_params`` does not know the image size, so it draws the offsets
    as fractions ``rand_h, rand_w`` in ``[0, 1)`` of the number of
    positions; :meth:`crop_offsets` turns them into pixel offsets.

    Args:
        crop_size (int | Sequence[int]): Output size, ``s`` or ``(h, w)``.
        padding (int | Sequence[int], optional): Padding of each border:
            ``p`` (every border), ``(left/right, top/bottom)`` or
            ``(left, top, right, bottom)``. Defaults to None (no padding).
        pad_val (Number | Sequence[Number]): Fill value of the padding, one
            number for every channel or one per channel; it must be
            representable in the images' dtype. Defaults to 0. (With a
            single non-zero number the counterpart, through OpenCV, fills
            the first channel only; a per-channel tuple means the same to
            both.)
    """

    _repr_keys = ('crop_size', 'padding', 'pad_val')

    def __init__(self,
                 crop_size: Union[int, Sequence[int]],
                 padding: Optional[Union[int, Sequence[int]]] = None,
                 pad_val: Union[numbers.Number, Sequence[numbers.Number]] = 0):
        self.crop_size = _int_pair(self, 'crop_size', crop_size)
        self.padding = _padding(padding)
        self.pad_val = _pad_val(self, pad_val)

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw the position of every image's crop.

        Returns:
            dict: ``rand_h`` and ``rand_w``, float64 ``(B,)`` in ``[0, 1)``:
            the position as a fraction of the number of vertical and
            horizontal positions (see :meth:`crop_offsets`).
        """
        u = torch.rand(
            batch_size, 2, device=device, generator=generator,
            dtype=torch.float64)
        return dict(rand_h=u[:, 0], rand_w=u[:, 1])

    def crop_offsets(self, params: dict, height: int, width: int) -> tuple:
        """Where each image is cropped.

        Args:
            params (dict): Parameters from :meth:`sample_params`.
            height (int): Image height before padding.
            width (int): Image width before padding.

        Returns:
            tuple: ``(top, left, crop_h, crop_w)``: the offsets (int64
            ``(B,)``) in the padded image, and the crop size.
        """
        left, top, right, bottom = self.padding
        padded_h, padded_w = height + top + bottom, width + left + right
        crop_h = min(self.crop_size[0], padded_h)
        crop_w = min(self.crop_size[1], padded_w)

        def pick(u, positions):
            return (u * positions).long().clamp_(max=positions - 1)

        return (pick(params['rand_h'], padded_h - crop_h + 1),
                pick(params['rand_w'], padded_w - crop_w + 1), crop_h, crop_w)

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        b, c, h, w = imgs.shape
        top, left, crop_h, crop_w = self.crop_offsets(params, h, w)
        # Rows and columns of the crop, in the unpadded image.
        rows = top[:, None] + torch.arange(
            crop_h, device=imgs.device) - self.padding[1]
        cols = left[:, None] + torch.arange(
            crop_w, device=imgs.device) - self.padding[0]
        out = imgs.gather(
            2, rows.clamp(0, h - 1)[:, None, :, None].expand(b, c, crop_h, w))
        out = out.gather(
            3, cols.clamp(0, w - 1)[:, None,
                                    None, :].expand(b, c, crop_h, crop_w))
        inside = (((rows >= 0) & (rows < h))[:, None, :, None]
                  & ((cols >= 0) & (cols < w))[:, None, None, :])
        if isinstance(self.pad_val, tuple):
            check('BatchRandomCrop', 'pad_val', self.pad_val,
                  len(self.pad_val) == c, f'one value per channel ({c})')
            fill = torch.stack([out.new_full((), v)
                                for v in self.pad_val]).view(1, c, 1, 1)
        else:
            fill = out.new_full((), self.pad_val)
        return torch.where(inside, out, fill)


@BATCH_AUGMENTS.register_module()
class BatchRandomFlip(BaseBatchTransform):
    """Flip each image with probability ``prob``.

    Batched counterpart of mmcv's ``RandomFlip`` with one direction.

    Args:
        prob (float): Probability that an image is flipped. Defaults to 0.5.
        direction (str): ``'horizontal'`` or ``'vertical'``. Defaults to
            ``'horizontal'``.
    """

    _repr_keys = ('prob', 'direction')

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal'):
        self.prob = _prob(self, prob)
        self.direction = check_choice('BatchRandomFlip', 'direction',
                                      direction, ('horizontal', 'vertical'))

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw which images are flipped.

        Returns:
            dict: ``flip``, bool ``(B,)``.
        """
        return dict(flip=_uniform(batch_size, device, generator) < self.prob)

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        flipped = imgs.flip(-1 if self.direction == 'horizontal' else -2)
        return torch.where(params['flip'].view(-1, 1, 1, 1), flipped, imgs)


@BATCH_AUGMENTS.register_module()
class BatchRandomGrayscale(BaseBatchTransform):
    """Turn each image grey with probability ``prob``.

    Batched counterpart of mmcv's ``RandomGrayscale``: a grey image is
    ``sum_c w_c * img_c`` with the weights normalised to sum 1, applied to
    the channels in their order, computed in float64 and truncated like
    numpy's ``astype('uint8')``; pixel-exact on uint8 images. Float images
    are not truncated. A one-channel image is left as it is.

    Args:
        prob (float): Probability that an image is turned grey. Defaults to
            0.1.
        keep_channels (bool): Must be True: the grey value is repeated over
            the channels, so that every image of the batch keeps its shape.
            Defaults to True.
        channel_weights (Sequence[float]): Non-negative weights, one per
            channel. Defaults to ``(1., 1., 1.)``.
    """

    _repr_keys = ('prob', 'keep_channels', 'channel_weights')

    def __init__(self,
                 prob: float = 0.1,
                 keep_channels: bool = True,
                 channel_weights: Sequence[float] = (1., 1., 1.)):
        owner = 'BatchRandomGrayscale'
        self.prob = _prob(self, prob)
        # Every image of a batch keeps its number of channels.
        self.keep_channels = check(owner, 'keep_channels', keep_channels,
                                   keep_channels is True, 'True')
        self.channel_weights = tuple(
            float(w) for w in check(
                owner, 'channel_weights', channel_weights,
                _numbers(channel_weights) and min(channel_weights) >= 0
                and sum(channel_weights) > 0, 'non-negative numbers, one '
                'per channel, with a positive sum'))
        total = sum(self.channel_weights)
        self._normalised = [w / total for w in self.channel_weights]

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw which images are turned grey.

        Returns:
            dict: ``gray``, bool ``(B,)``.
        """
        return dict(gray=_uniform(batch_size, device, generator) < self.prob)

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        channels = imgs.shape[1]
        if channels == 1:
            return imgs
        check('BatchRandomGrayscale', 'channel_weights',
              self.channel_weights, channels == len(self._normalised),
              f'one weight per channel ({channels})')
        gray = sum(w * imgs[:, c].double()
                   for c, w in enumerate(self._normalised))
        gray = gray.to(imgs.dtype)[:, None].expand_as(imgs)
        return torch.where(params['gray'].view(-1, 1, 1, 1), gray, imgs)


@BATCH_AUGMENTS.register_module()
class BatchColorJitter(BaseBatchTransform):
    """Jitter brightness, contrast, saturation and hue, each image in its own
    random order.

    Batched counterpart of mmpretrain's ``ColorJitter`` (pillow backend),
    wrapped in ``RandomApply(..., prob=prob)``. Each image draws a factor of
    every op (uniform over its range) and a random order of the four ops,
    and is jittered at all with probability ``prob``. The ops are applied in
    four rounds; in round ``r`` an image takes the op its order puts in slot
    ``r`` (``torch.where`` keeps the other images unchanged).

    The ops follow PIL's arithmetic (``degenerate + f * (img - degenerate)``
    in float32, clamped to ``[0, 255]``; the degenerate image is black, the
    mean luma rounded to an integer, or the luma
    ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``), with the channels read
    as BGR like mmcv does. Hue is a float HSV round trip, as torchvision's
    ``adjust_hue`` (mmcv 2.2's pillow ``adjust_hue`` fails on negative
    factors under numpy 2). uint8 images are truncated to integers after
    every op, as PIL does (rounded after hue); float images are not
    quantised.

    Tolerance: on uint8 images, brightness, contrast and saturation match
    mmpretrain's ``ColorJitter`` pixel for pixel; with hue the mean absolute
    difference from the counterpart (hue by torchvision) is at most 1 grey
    level.

    Args:
        brightness (float | Sequence[float]): ``b`` draws the factor from
            ``[max(0, 1 - b), 1 + b]``; ``(min, max)`` from that range
            (``0 <= min <= max``). Defaults to 0 (off).
        contrast (float | Sequence[float]): As ``brightness``. Defaults to 0.
        saturation (float | Sequence[float]): As ``brightness``. Defaults
            to 0.
        hue (float | Sequence[float]): ``h`` in ``[0, 0.5]`` draws the hue
            shift (in turns) from ``[-h, h]``; ``(min, max)`` from that range
            (``-0.5 <= min <= max <= 0.5``). Defaults to 0 (off).
        prob (float): Probability that an image is jittered. Defaults to 1.
    """

    _repr_keys = ('brightness', 'contrast', 'saturation', 'hue', 'prob')
    _ops = ('brightness', 'contrast', 'saturation', 'hue')  # order indices
    _identity = dict(brightness=1., contrast=1., saturation=1., hue=0.)

    def __init__(self,
                 brightness: Union[float, Sequence[float]] = 0.,
                 contrast: Union[float, Sequence[float]] = 0.,
                 saturation: Union[float, Sequence[float]] = 0.,
                 hue: Union[float, Sequence[float]] = 0.,
                 prob: float = 1.0):
        self.brightness = _jitter_range(brightness, 'brightness')
        self.contrast = _jitter_range(contrast, 'contrast')
        self.saturation = _jitter_range(saturation, 'saturation')
        self.hue = _jitter_range(hue, 'hue')
        self.prob = _prob(self, prob)

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw every image's factors, order of the ops and whether it is
        jittered.

        Returns:
            dict: ``order``, int64 ``(B, 4)``: a permutation of the op
            indices (0 brightness, 1 contrast, 2 saturation, 3 hue), the op
            of each slot; ``brightness``, ``contrast``, ``saturation`` and
            ``hue``, float32 ``(B,)``: the factors (the identity, 1 or 0, for
            an op that is off); ``jittered``, bool ``(B,)``.
        """
        params = dict(
            order=_uniform(batch_size, device, generator, 4).argsort(dim=1))
        for op in self._ops:
            value_range = getattr(self, op)
            if value_range is None:
                params[op] = torch.full((batch_size, ),
                                        self._identity[op],
                                        device=device)
            else:
                low, high = value_range
                params[op] = low + (high - low) * _uniform(
                    batch_size, device, generator)
        params['jittered'] = _uniform(batch_size, device,
                                      generator) < self.prob
        return params

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        check('BatchColorJitter', 'images of shape', tuple(imgs.shape),
              imgs.shape[1] == 3, '3-channel (BGR) images')
        quantise = imgs.dtype == torch.uint8
        x = imgs.to(torch.promote_types(imgs.dtype, torch.float32))
        adjust = dict(
            brightness=lambda x, f: _blend(0., x, f, quantise),
            contrast=lambda x, f: _blend(
                _mean_luma(x, quantise), x, f, quantise),
            saturation=lambda x, f: _blend(
                _luma(x, quantise), x, f, quantise),
            hue=lambda x, f: _shift_hue(x, f, quantise))
        for slot in range(4):
            for index, op in enumerate(self._ops):
                if getattr(self, op) is None:
                    continue
                chosen = params['jittered'] & (params['order'][:, slot]
                                               == index)
                factor = params[op].view(-1, 1, 1, 1)
                x = torch.where(
                    chosen.view(-1, 1, 1, 1), adjust[op](x, factor), x)
        return x.to(imgs.dtype)


def _blend(degenerate: Union[Tensor, float], img: Tensor, factor: Tensor,
           quantise: bool) -> Tensor:
    """PIL's ``Image.blend(degenerate, img, factor)``, clamped to
    ``[0, 255]`` and, for uint8 images, truncated to integers."""
    out = (degenerate + factor * (img - degenerate)).clamp(0, 255)
    return out.trunc() if quantise else out


def _luma(img: Tensor, quantise: bool) -> Tensor:
    """Luma ``(B, 1, H, W)`` of BGR images with PIL's weights. With
    ``quantise`` it is PIL's integer ``convert('L')`` (exact in float32:
    every partial sum stays below 2**24)."""
    b, g, r = img.unbind(1)
    luma = r * 19595 + g * 38470 + b * 7471
    if quantise:
        luma = torch.floor((luma + 32768) / 65536)
    else:
        luma = luma / 65536
    return luma[:, None]


def _mean_luma(img: Tensor, quantise: bool) -> Tensor:
    """Mean luma ``(B, 1, 1, 1)``; with ``quantise`` rounded half up as
    PIL's ``Contrast`` does."""
    mean = _luma(img, quantise).double().mean(dim=(2, 3), keepdim=True)
    if quantise:
        mean = torch.floor(mean + 0.5)
    return mean.to(img.dtype)


def _shift_hue(img: Tensor, shift: Tensor, quantise: bool) -> Tensor:
    """Rotate the hue of BGR images by ``shift`` turns (HSV round trip);
    uint8 images are rounded to integers."""
    bgr = img / 255
    b, g, r = bgr.unbind(1)
    value = bgr.amax(dim=1)
    chroma = value - bgr.amin(dim=1)  # value * saturation
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    # Hue in sextants (the HSV hexagon's sides); any value when chroma == 0.
    hue = torch.where(
        value == r, (g - b) / safe,
        torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = (hue + 6 * shift[:, 0]).remainder(6)
    # HSV -> RGB in one formula: channel n of the hexagon (B 1, G 3, R 5) is
    # value - chroma * clamp(min(k, 4 - k), 0, 1) with k = (hue + n) mod 6.
    channels = []
    for n in (1, 3, 5):
        k = (hue + n).remainder(6)
        channels.append(value - chroma * torch.minimum(k, 4 - k).clamp(0, 1))
    out = torch.stack(channels, dim=1) * 255
    return out.round().clamp(0, 255) if quantise else out


def build_batch_transforms(
        cfgs: Optional[Sequence[Union[dict, Callable]]]) -> List[Callable]:
    """Build batch transforms from configs.

    Args:
        cfgs (Sequence[dict | Callable], optional): Configs (dicts with a
            ``type`` registered in ``BATCH_AUGMENTS``) and ready callables
            ``f(imgs, generator) -> imgs``, in order. None means none.

    Returns:
        list[Callable]: The transforms, in order.
    """
    if isinstance(cfgs, (dict, str)) or not isinstance(
            cfgs, (Sequence, type(None))):
        raise TypeError('batch_transforms must be a list of transform '
                        f'configs or callables, got {_describe(cfgs)}')
    transforms = [
        BATCH_AUGMENTS.build(cfg) if isinstance(cfg, dict) else cfg
        for cfg in cfgs or []
    ]
    for i, transform in enumerate(transforms):
        if isinstance(transform, (Mixup, RandomBatchAugment)) or not callable(
                transform):
            raise TypeError(
                f'batch_transforms[{i}]={cfgs[i]!r}: a batch transform config '
                '(a dict with a registered type) or a callable f(images, '
                'generator) is allowed; Mixup and CutMix belong in '
                '`batch_augments`.')
    return transforms


def apply_batch_transforms(
        transforms: Sequence[Callable],
        imgs: Tensor,
        generator: Optional[torch.Generator] = None) -> Tensor:
    """Apply batch transforms in order.

    Args:
        transforms (Sequence[Callable]): Transforms, e.g. from
            :func:`build_batch_transforms`.
        imgs (Tensor): Images ``(B, C, H, W)``.
        generator (torch.Generator, optional): Source of randomness, on the
            device of ``imgs``. Defaults to None (torch's global generator).

    Returns:
        Tensor: The transformed images.
    """
    for transform in transforms:
        imgs = transform(imgs, generator)
    return imgs


# Validation of the settings (once, in ``__init__``).


def _describe(value) -> str:
    """``type: value`` for error messages (shape and dtype for tensors)."""
    if isinstance(value, Tensor):
        return f'Tensor of shape {tuple(value.shape)} and dtype {value.dtype}'
    return f'{type(value).__name__}: {value!r}'


def _numbers(value) -> bool:
    """Whether ``value`` is a non-empty sequence of real numbers."""
    return isinstance(value, Sequence) and len(value) > 0 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool)
        for v in value)


def _prob(transform, prob) -> float:
    return check_number(type(transform).__name__, 'prob', prob, 0, 1)


def _int_pair(transform, key: str, value) -> tuple:
    """``s`` or ``(h, w)`` as ``(h, w)``, positive ints."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    check(type(transform).__name__, key, value,
          _numbers(pair) and len(pair) == 2 and all(
              isinstance(s, numbers.Integral) and s > 0 for s in pair),
          'a positive int or a pair (h, w) of positive ints')
    return tuple(int(s) for s in pair)


def _padding(padding) -> tuple:
    """``padding`` as ``(left, top, right, bottom)``, as mmcv.impad reads
    it."""
    pads = (0, ) * 4 if padding is None else (padding, ) * 4 if _numbers(
        [padding]) else tuple(padding) * (4 // len(padding)) if _numbers(
            padding) and len(padding) in (2, 4) else ()
    check('BatchRandomCrop', 'padding', padding,
          len(pads) == 4 and all(
              isinstance(p, numbers.Integral) and p >= 0 for p in pads),
          'None, a non-negative int, or 2 or 4 of them (left/right, '
          'top/bottom or left, top, right, bottom)')
    return pads


def _pad_val(transform, pad_val):
    """A number, or a tuple of numbers (one per channel)."""
    check(type(transform).__name__, 'pad_val', pad_val,
          _numbers([pad_val]) or _numbers(pad_val),
          'a number or a sequence of numbers (one per channel)')
    return pad_val if _numbers([pad_val]) else tuple(pad_val)


def _jitter_range(value, name) -> Optional[tuple]:
    """The range ``(min, max)`` of a factor of :class:`BatchColorJitter`, or
    None if the op is off."""
    # Factors are around 1 in [0, inf); hue shifts around 0 in [-0.5, 0.5].
    center, low, high = (0., -0.5, 0.5) if name == 'hue' else (1., 0.,
                                                               math.inf)
    span = (max(center - value, low), center + value) if _numbers(
        [value]) and 0 <= value <= high - center else tuple(value) if (
            _numbers(value) and len(value) == 2) else (1., 0.)
    check('BatchColorJitter', name, value, low <= span[0] <= span[1] <= high,
          f'a number in [0, {high - center}] or a pair (min, max) with '
          f'{low} <= min <= max <= {high}')
    return None if span == (center, center) else tuple(float(v) for v in span)
