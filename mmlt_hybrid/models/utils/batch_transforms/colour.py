"""Colour batch transforms: random grayscale and colour jitter, with PIL's
arithmetic."""
import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ....registry import BATCH_TRANSFORMS
from ....validation import check
from .base import BaseBatchTransform, check_prob, real_numbers, uniform


@BATCH_TRANSFORMS.register_module()
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

    Raises:
        ValueError: If a setting is not allowed, or (when applied) the
            images do not have one channel or one per weight.
    """

    _repr_keys = ('prob', 'keep_channels', 'channel_weights')

    def __init__(self,
                 prob: float = 0.1,
                 keep_channels: bool = True,
                 channel_weights: Sequence[float] = (1., 1., 1.)):
        owner = 'BatchRandomGrayscale'
        self.prob = check_prob(self, prob)
        # Every image of a batch keeps its number of channels.
        self.keep_channels = check(owner, 'keep_channels', keep_channels,
                                   keep_channels is True, 'True')
        self.channel_weights = tuple(
            float(w) for w in check(
                owner, 'channel_weights', channel_weights,
                real_numbers(channel_weights) and min(channel_weights) >= 0
                and sum(channel_weights) > 0, 'non-negative numbers, one '
                'per channel, with a positive sum'))
        total = sum(self.channel_weights)
        self._normalised = [w / total for w in self.channel_weights]

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw which images are turned grey.

        Returns:
            dict: ``gray``, bool ``(B,)``.
        """
        return dict(gray=uniform(batch_size, device, generator) < self.prob)

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        channels = imgs.shape[1]
        if channels == 1:
            return imgs
        check('BatchRandomGrayscale', 'channel_weights', self.channel_weights,
              channels == len(self._normalised),
              f'one weight per channel ({channels})')
        gray = sum(w * imgs[:, c].double()
                   for c, w in enumerate(self._normalised))
        gray = gray.to(imgs.dtype)[:, None].expand_as(imgs)
        return torch.where(params['gray'].view(-1, 1, 1, 1), gray, imgs)


@BATCH_TRANSFORMS.register_module()
class BatchColorJitter(BaseBatchTransform):
    """Jitter brightness, contrast, saturation and hue, each image in its own
    random order.

    Batched counterpart of mmpretrain's ``ColorJitter`` (pillow backend),
    wrapped in ``RandomApply(..., prob=prob)``: each image draws a factor of
    every op (uniform over its range), a random order of the four ops, and
    whether it is jittered at all (``prob``). The ops follow PIL's
    arithmetic with the channels read as BGR, as mmcv does; hue is a float
    HSV round trip, as torchvision's ``adjust_hue`` (mmcv 2.2's pillow
    ``adjust_hue`` fails on negative factors under numpy 2). uint8 images
    are truncated to integers after every op, as PIL does (rounded after
    hue); float images are not quantised. Tolerance: on uint8 images,
    brightness, contrast and saturation match mmpretrain's ``ColorJitter``
    pixel for pixel; with hue the mean absolute difference from the
    counterpart (hue by torchvision) is at most 1 grey level.

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

    Raises:
        ValueError: If a setting is not allowed, or (when applied) the
            images do not have 3 channels.
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
        self.prob = check_prob(self, prob)

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
            order=uniform(batch_size, device, generator, 4).argsort(dim=1))
        for op in self._ops:
            value_range = getattr(self, op)
            if value_range is None:
                params[op] = torch.full((batch_size, ),
                                        self._identity[op],
                                        device=device)
            else:
                low, high = value_range
                params[op] = low + (high - low) * uniform(
                    batch_size, device, generator)
        params['jittered'] = uniform(batch_size, device, generator) < self.prob
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
            saturation=lambda x, f: _blend(_luma(x, quantise), x, f, quantise),
            hue=lambda x, f: _shift_hue(x, f, quantise))
        # Four rounds: in round r an image takes the op its order puts in
        # slot r (torch.where keeps the other images unchanged).
        for slot in range(4):
            for index, op in enumerate(self._ops):
                if getattr(self, op) is None:
                    continue
                chosen = params['jittered'] & (
                    params['order'][:, slot] == index)
                factor = params[op].view(-1, 1, 1, 1)
                x = torch.where(
                    chosen.view(-1, 1, 1, 1), adjust[op](x, factor), x)
        return x.to(imgs.dtype)


def _jitter_range(value, name) -> Optional[tuple]:
    """The range ``(min, max)`` of a factor of :class:`BatchColorJitter`, or
    None if the op is off."""
    # Factors are around 1 in [0, inf); hue shifts around 0 in [-0.5, 0.5].
    center, low, high = (0., -0.5, 0.5) if name == 'hue' else (1., 0.,
                                                               math.inf)
    span = (max(center - value, low), center + value) if real_numbers(
        [value]) and 0 <= value <= high - center else tuple(value) if (
            real_numbers(value) and len(value) == 2) else (1., 0.)
    check(
        'BatchColorJitter', name, value, low <= span[0] <= span[1] <= high,
        f'a number in [0, {high - center}] or a pair (min, max) with '
        f'{low} <= min <= max <= {high}')
    return None if span == (center, center) else tuple(float(v) for v in span)


# PIL's arithmetic: ``degenerate + f * (img - degenerate)`` in float32,
# clamped to [0, 255]; the degenerate image is black (brightness), the mean
# luma rounded to an integer (contrast), or the luma (saturation).


def _blend(degenerate: Union[Tensor, float], img: Tensor, factor: Tensor,
           quantise: bool) -> Tensor:
    """PIL's ``Image.blend(degenerate, img, factor)``, clamped to
    ``[0, 255]`` and, for uint8 images, truncated to integers."""
    out = (degenerate + factor * (img - degenerate)).clamp(0, 255)
    return out.trunc() if quantise else out


def _luma(img: Tensor, quantise: bool) -> Tensor:
    """Luma ``(B, 1, H, W)`` of BGR images with PIL's weights, ``(19595 R
    + 38470 G + 7471 B + 2**15) >> 16``. With ``quantise`` it is PIL's
    integer ``convert('L')`` (exact in float32: every partial sum stays
    below 2**24)."""
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
