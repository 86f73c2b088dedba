"""Batched RandAugment: each image its own ops, magnitudes and signs, with
the arithmetic of mmpretrain's per-sample ops (mmcv on OpenCV 5)."""
import math
from numbers import Number
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.datasets.transforms import auto_augment as mmpretrain_aug
from torch import Tensor

from ....registry import BATCH_TRANSFORMS
from ....validation import check, check_choice, check_int, check_number
from .base import BaseBatchTransform, check_pad_val, fill_like

_GEOMETRIC = ('Shear', 'Translate', 'Rotate')
_SIGNED = _GEOMETRIC + ('Contrast', 'ColorTransform', 'Brightness',
                        'Sharpness')
_OPS = _SIGNED + ('AutoContrast', 'Equalize', 'Invert', 'Posterize',
                  'Solarize', 'SolarizeAdd')
_INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic')
_FIXED_KEY = dict(Rotate='angle', Posterize='bits', Solarize='thr')


@BATCH_TRANSFORMS.register_module()
class BatchRandAugment(BaseBatchTransform):
    """Apply ``num_policies`` random ops of ``policies`` to each image.

    Batched counterpart of mmpretrain's ``RandAugment`` (same arguments and
    meaning; its per-sample ops are built from them, so each op keeps its own
    defaults: ``prob`` 0.5, ``random_negative_prob`` 0.5 for the signed ops,
    the interpolation and the ``pad_val`` merged from ``hparams``). Each image
    draws, in each of ``num_policies`` rounds, an op uniformly from
    ``policies`` (with replacement, as ``np.random.choice``), whether the op is
    applied (``prob``), a magnitude level (``magnitude_level``; with
    ``magnitude_std > 0`` normal around it and clipped to ``[0, total_level]``;
    with ``'inf'`` uniform in ``[0, level)``), mapped into the op's
    ``magnitude_range`` as ``level / total_level * (v2 - v1) + v1``, and a sign
    (``random_negative_prob``). Tolerance on uint8 images, against the
    counterpart with the same ops and magnitudes (mmcv on OpenCV 5; other
    OpenCV versions round some pixels otherwise): pixel-exact, except the
    geometric ops with a ``'bilinear'`` or ``'bicubic'`` interpolation (Shear's
    default), done by ``grid_sample``: at most 1 grey level off, below 0.01 on
    average (measured: about 1e-4 bicubic, 1e-3 bilinear), and the same fill
    region. One difference: an int ``pad_val`` fills every channel of a rotated
    image (mmpretrain's ``Rotate`` passes it to OpenCV, which then fills the
    first channel only). Float images: within 1 grey level of the uint8 result
    (the same ops, not rounded to integers).

    Args:
        policies (str | list[dict]): A key of mmpretrain's
            ``RANDAUG_POLICIES`` (e.g. ``'timm_increasing'``) or op configs
            (``type`` one of AutoContrast, Equalize, Invert, Rotate,
            Posterize, Solarize, SolarizeAdd, ColorTransform, Contrast,
            Brightness, Sharpness, Shear, Translate, with their arguments).
            Defaults to ``'timm_increasing'``.
        num_policies (int): Ops applied to each image. Defaults to 2.
        magnitude_level (Number): Magnitude level. Defaults to 9.
        magnitude_std (Number | str): Noise of the level: a number (<= 0:
            none) or ``'inf'``. Defaults to 0.
        total_level (Number): Level of the top of the ranges. Defaults to 10.
        hparams (dict): Arguments given to the ops that take them and do
            not set them. Defaults to ``dict(pad_val=128)``.

    Raises:
        ValueError: If a setting is not allowed, or (when applied) the
            images do not fit the ops (Contrast and ColorTransform need 3
            channels; a ``pad_val`` needs one value or one per channel).
    """

    _repr_keys = ('policies', 'num_policies', 'magnitude_level',
                  'magnitude_std', 'total_level', 'hparams')

    def __init__(self,
                 policies: Union[str, Sequence[dict]] = 'timm_increasing',
                 num_policies: int = 2,
                 magnitude_level: Number = 9,
                 magnitude_std: Union[Number, str] = 0.,
                 total_level: Number = 10,
                 hparams: dict = dict(pad_val=128)):
        table, owner = mmpretrain_aug.RANDAUG_POLICIES, 'BatchRandAugment'
        check(
            owner, 'policies', policies,
            policies in table if isinstance(policies, str) else
            (isinstance(policies, Sequence) and len(policies) > 0 and all(
                isinstance(p, dict) and p.get('type') in _OPS
                for p in policies)),
            f'a key of {sorted(table)} or a list of op dicts with a type in '
            f'{sorted(_OPS)}')
        check_int(owner, 'num_policies', num_policies)
        check_number(owner, 'magnitude_level', magnitude_level, low=0)
        if magnitude_std != 'inf':
            check_number(owner, 'magnitude_std', magnitude_std)
        check_number(owner, 'total_level', total_level, low=0, low_open=True)
        check(owner, 'hparams', hparams, isinstance(hparams, dict), 'a dict')
        try:
            ops = mmpretrain_aug.RandAugment(policies, num_policies,
                                             magnitude_level, magnitude_std,
                                             total_level, hparams).transforms
        except (AssertionError, TypeError) as err:
            raise ValueError(f'BatchRandAugment: policies={policies!r} is '
                             f'not allowed: {err}') from err
        self.policies = policies
        self.num_policies = num_policies
        self.magnitude_level = magnitude_level
        self.magnitude_std = magnitude_std
        self.total_level = total_level
        self.hparams = hparams
        self._ops = ops
        self._names = [type(op).__name__ for op in ops]
        # Per op: prob, random_negative_prob, magnitude_range (low, high -
        # low) or fixed magnitude, and whether it has a range.
        self._table = []
        for op, name in zip(ops, self._names):
            low, high = op.magnitude_range or (0, 0)
            fixed = getattr(op, _FIXED_KEY.get(name, 'magnitude'), 0) or 0
            negative = op.random_negative_prob if name in _SIGNED else 0.
            self._table.append(
                (op.prob, negative, low, high - low, fixed, op.magnitude_range
                 is not None))
        self._device_tables = {}  # the table on each device, copied once
        # Geometric ops sharing an interpolation and a fill: one warp.
        self._warps = {}
        for k, (op, name) in enumerate(zip(ops, self._names)):
            if name in _GEOMETRIC:
                check_choice(owner, f'{name} interpolation', op.interpolation,
                             _INTERPOLATIONS)
                pad_val = check_pad_val(self, op.pad_val, f'{name} pad_val')
                self._warps.setdefault((op.interpolation, pad_val),
                                       []).append(k)

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw every image's ops, whether they apply, and magnitudes.

        Returns:
            dict: ``ops``, int64 ``(B, num_policies)``: the index in the
            policies of the op of each round; ``applied``, bool ``(B,
            num_policies)``; ``magnitude``, float64 ``(B, num_policies)``:
            the op's signed magnitude (angle, bits, threshold... as the
            counterpart's argument; 0 for ops without one).
        """
        shape = (batch_size, self.num_policies)
        ops = torch.randint(
            len(self._ops), shape, device=device, generator=generator)
        u = torch.rand(
            *shape, 3, device=device, generator=generator, dtype=torch.float64)
        level = torch.full(
            shape,
            float(self.magnitude_level),
            device=device,
            dtype=torch.float64)
        if self.magnitude_std == 'inf':
            level = level * u[..., 2]
        elif self.magnitude_std > 0:
            noise = torch.randn(
                *shape,
                device=device,
                generator=generator,
                dtype=torch.float64)
            level = (level + self.magnitude_std * noise).clamp(
                0, self.total_level)

        device = torch.device(device)
        if device not in self._device_tables:
            self._device_tables[device] = torch.tensor(
                self._table, device=device, dtype=torch.float64)
        prob, negative_prob, low, span, fixed, ranged = self._device_tables[
            device][ops].unbind(-1)
        magnitude = torch.where(ranged > 0,
                                (level / self.total_level) * span + low, fixed)
        return dict(
            ops=ops,
            applied=u[..., 0] < prob,
            magnitude=torch.where(u[..., 1] < negative_prob, -magnitude,
                                  magnitude))

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        quantise = imgs.dtype == torch.uint8
        x = imgs.to(torch.promote_types(imgs.dtype, torch.float32))
        if x.shape[1] != 3 and {'Contrast', 'ColorTransform'} & set(
                self._names):
            raise ValueError('BatchRandAugment: Contrast and ColorTransform '
                             f'need 3-channel (BGR) images, got '
                             f'{x.shape[1]} channels')
        # Each round applies every op of the policies to the whole batch and
        # keeps, per image, the chosen op's result (torch.where); the
        # pointwise ops of uint8 images go through one look-up table per
        # image and channel.
        for r in range(self.num_policies):
            op_of = torch.where(params['applied'][:, r], params['ops'][:, r],
                                -1)
            magnitude = params['magnitude'][:, r].view(-1, 1, 1, 1)
            for (interpolation, pad_val), indices in self._warps.items():
                chosen = torch.zeros_like(op_of, dtype=torch.bool)
                inverse = torch.eye(
                    2, 3, dtype=torch.float64,
                    device=x.device).expand(len(x), 2, 3)
                for k in indices:
                    inverse = torch.where((op_of == k).view(-1, 1, 1),
                                          self._inverse(k, magnitude, x),
                                          inverse)
                    chosen |= op_of == k
                fill = fill_like(x, pad_val, self,
                                 f'{self._names[indices[0]]} pad_val')
                warped = _warp(x, inverse, interpolation, fill, quantise)
                x = torch.where(chosen.view(-1, 1, 1, 1), warped, x)
            x = self._pointwise(x, op_of, magnitude.view(-1, 1, 1), quantise)
            for k, name in enumerate(self._names):
                if name in _IMAGE_OPS:
                    out = _IMAGE_OPS[name](x, magnitude, quantise)
                    x = torch.where((op_of == k).view(-1, 1, 1, 1), out, x)
        return x.to(imgs.dtype)

    def _pointwise(self, x: Tensor, op_of: Tensor, magnitude: Tensor,
                   quantise: bool) -> Tensor:
        """The ops that map every value of a channel through one function:
        on uint8 images one look-up table of the 256 levels per image and
        channel (the chosen op's), applied by one ``gather``."""
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        values = torch.arange(
            256, dtype=x.dtype, device=x.device).expand(
                b, c, 256) if quantise else flat
        mapped = values
        for k, name in enumerate(self._names):
            if name in _POINTWISE_OPS:
                out = _POINTWISE_OPS[name](values, x, magnitude, quantise,
                                           self._ops[k])
                mapped = torch.where((op_of == k).view(-1, 1, 1), out, mapped)
        if quantise:
            mapped = mapped.gather(2, flat.long())
        return mapped.view_as(x)

    def _inverse(self, k: int, magnitude: Tensor, x: Tensor) -> Tensor:
        """The inverse matrix ``(B, 2, 3)`` of geometric op ``k`` with the
        given magnitudes, as ``cv2.warpAffine`` inverts it."""
        op, name = self._ops[k], self._names[k]
        h, w = x.shape[-2:]
        m = magnitude.view(-1)
        one, zero = torch.ones_like(m), torch.zeros_like(m)
        if name == 'Rotate':
            center = op.center or ((w - 1) * 0.5, (h - 1) * 0.5)
            cx, cy = (float(np.float32(v)) for v in center)  # cv::Point2f
            angle = -m * (math.pi / 180)
            alpha, beta = torch.cos(angle) * op.scale, torch.sin(
                angle) * op.scale
            rows = [[alpha, beta, (1 - alpha) * cx - beta * cy],
                    [-beta, alpha, beta * cx + (1 - alpha) * cy]]
        else:  # float32 matrices, as mmcv builds them
            if name == 'Translate':
                m = m * (w if op.direction == 'horizontal' else h)
                rows = [[one, zero, m], [zero, one, zero]]
                if op.direction != 'horizontal':
                    rows = [[one, zero, zero], [zero, one, m]]
            else:
                rows = [[one, m, zero], [zero, one, zero]]
                if op.direction != 'horizontal':
                    rows = [[one, zero, zero], [m, one, zero]]
            rows = [[_f32(v) for v in row] for row in rows]
        (a, b, c), (d, e, f) = rows
        det = a * e - b * d
        det = torch.where(det != 0, 1. / det, 0.)
        a11, a12, a21, a22 = e * det, -b * det, -d * det, a * det
        inverse = [[a11, a12, -a11 * c - a12 * f],
                   [a21, a22, -a21 * c - a22 * f]]
        return _f32(torch.stack([torch.stack(row, -1) for row in inverse], 1))


# The ops. Images ``x``: float ``(B, C, H, W)``, integer-valued when
# ``quantise``; magnitudes ``m``: float64, one per image, broadcastable.
#
# They reproduce the arithmetic of mmpretrain's per-sample ops on uint8 BGR
# images as mmcv (with OpenCV 5) computes them: ``cv2.addWeighted`` as
# ``fma(img, a, degenerate * b)`` in float32, OpenCV's 15-bit integer grey
# (``(3735 B + 19235 G + 9798 R + 2**14) >> 15``), warps with source
# coordinates computed in float32 from the inverted matrix and rounded half
# to even for ``'nearest'``. Float images get the same ops without rounding
# to integers (the degenerate images that some blend with, a grey or
# smoothed image, are rounded for both).


def _f32(t: Tensor) -> Tensor:
    """``t`` (float64) rounded to float32 precision, kept in float64."""
    return t.float().double()


def _add_weighted(x: Tensor, factor: Tensor, degenerate) -> Tensor:
    """``cv2.addWeighted(x, factor, degenerate, 1 - factor, 0)`` as OpenCV
    computes it: ``fma(x, a, degenerate * b)`` in float32 (emulated in
    float64, where ``x * a`` is exact)."""
    a, b = _f32(factor), _f32(1 - factor)
    return (x.double() * a + _f32(degenerate * b)).to(x.dtype)


def _blended(x: Tensor, m: Tensor, degenerate, quantise: bool) -> Tensor:
    """``addWeighted`` with factor ``1 + m``, clamped to ``[0, 255]`` and,
    for uint8 images, truncated (``astype('uint8')`` of a float image)."""
    out = _add_weighted(x, 1 + m, degenerate).clamp(0, 255)
    return out.trunc() if quantise else out


def _gray(x: Tensor) -> Tensor:
    """OpenCV's BGR -> grey ``(B, 1, H, W)``, in 15-bit fixed point."""
    b, g, r = x.double().unbind(1)
    return torch.floor((b * 3735 + g * 19235 + r * 9798 + 2**14) / 2**15)[:,
                                                                          None]


def _color(x, m, quantise):
    # On uint8 images addWeighted rounds (half to even) and saturates.
    out = _add_weighted(x, 1 + m, _gray(x))
    return (out.round() if quantise else out).clamp(0, 255)


def _sharpness(x, m, quantise):
    # cv2.filter2D with PIL's SMOOTH kernel [[1, 1, 1], [1, 5, 1], [1, 1,
    # 1]] / 13, borders reflected (101), rounded (the sum / 13 of integers
    # is never a tie).
    h, w = x.shape[-2:]
    rows = _pad_reflect101(x, 2)
    rows = rows[..., :h, :] + rows[..., 1:h + 1, :] + rows[..., 2:, :]
    box = _pad_reflect101(rows, 3)
    box = box[..., :w] + box[..., 1:w + 1] + box[..., 2:]  # 3x3 sums
    return _blended(x, m, ((box + 4 * x) / 13).round(), quantise)


def _pad_reflect101(x: Tensor, dim: int) -> Tensor:
    """``x`` padded by one on both sides of ``dim``, reflected without
    repeating the edge (a size of 1 is repeated)."""
    n = x.shape[dim]
    return torch.cat(
        [x.narrow(dim, min(1, n - 1), 1), x,
         x.narrow(dim, max(n - 2, 0), 1)], dim)


_IMAGE_OPS = dict(ColorTransform=_color, Sharpness=_sharpness)

# Pointwise ops: ``f(v, x, m, quantise, op)`` maps values ``v`` ``(B, C,
# N)`` (the 256 levels, or the pixels of float images) of images ``x``,
# with magnitudes ``m`` ``(B, 1, 1)``.


def _auto_contrast(v, x, m, quantise, op):
    # mmcv: lut = clip(v * scale + offset, 0, 255) in float64, truncated.
    low = x.amin(dim=(2, 3)).double()[..., None]
    high = x.amax(dim=(2, 3)).double()[..., None]
    scale = 255. / (high - low)
    out = (v.double() * scale + (-low * scale)).clamp(0, 255)
    out = (out.trunc() if quantise else out).to(v.dtype)
    return torch.where(high > low, out, v)


def _equalize(v, x, m, quantise, op):
    # mmcv/PIL: lut = (cumsum(hist) + step // 2) // step, shifted by one,
    # with step = (N - count of the top value) // 255; float images are
    # binned by their integer part.
    b, c, h, w = x.shape
    levels = x.clamp(0, 255).floor().long().view(b, c, h * w)
    hist = torch.zeros(
        b, c, 256, dtype=torch.long,
        device=x.device).scatter_add_(2, levels, torch.ones_like(levels))
    step = (h * w - hist.gather(2, levels.amax(2, keepdim=True))) // 255
    lut = (hist.cumsum(2) + step // 2) // step.clamp(min=1)
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut[..., :-1]],
                    2).clamp(max=255)
    out = lut.gather(2, v.clamp(0, 255).floor().long()).to(v.dtype)
    return torch.where(step > 0, out, v)


def _posterize(v, x, m, quantise, op):
    # bits = ceil(magnitude); keep the top bits: floor(v / 2**s) * 2**s.
    unit = 2**(8 - m.ceil()).clamp(0, 8).to(v.dtype)
    return torch.floor(v / unit) * unit


def _solarize(v, x, m, quantise, op):
    thr = (m.ceil() if quantise else m).to(v.dtype)  # v < thr, v integral
    return torch.where(v < thr, v, 255 - v)


def _solarize_add(v, x, m, quantise, op):
    thr = math.ceil(op.thr) if quantise else op.thr
    add = (m.floor() if quantise else m).to(v.dtype)  # astype('uint8')
    return torch.where(v < thr, (v + add).clamp(0, 255), v)


def _contrast(v, x, m, quantise, op):
    mean = _gray(x).mean(dim=(1, 2, 3)).round()  # half to even, as round()
    return _blended(v, m, mean.view(-1, 1, 1), quantise)


_POINTWISE_OPS = dict(
    AutoContrast=_auto_contrast,
    Equalize=_equalize,
    Invert=lambda v, x, m, quantise, op: 255 - v,
    Posterize=_posterize,
    Solarize=_solarize,
    SolarizeAdd=_solarize_add,
    Contrast=_contrast,
    Brightness=lambda v, x, m, quantise, op: _blended(v, m, 0., quantise))


def _warp(x: Tensor, inverse: Tensor, interpolation: str, fill: Tensor,
          quantise: bool) -> Tensor:
    """``cv2.warpAffine`` of each image with its inverse matrix ``(B, 2,
    3)`` (float32 values), constant border ``fill`` (from
    :func:`fill_like`)."""
    b, c, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=torch.float64).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=torch.float64).view(1, 1, w)
    coef = inverse.view(b, 6, 1, 1).unbind(1)
    # OpenCV: per row y * m1 + m2 in float32, then fma(x, m0, row).
    src_x = _f32(xs * coef[0] + _f32(_f32(ys * coef[1]) + coef[2]))
    src_y = _f32(xs * coef[3] + _f32(_f32(ys * coef[4]) + coef[5]))
    flat = x.reshape(b, c, h * w)

    def tap(row, col):
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        index = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).long()
        value = flat.gather(2, index.view(b, 1, h * w).expand(b, c, h * w))
        return torch.where(inside[:, None], value.view(b, c, h, w), fill)

    if interpolation == 'nearest':
        return tap(src_y.round(), src_x.round())
    # Constant border: sample x - fill with zeros outside, add fill back.
    grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1],
                       dim=-1).to(x.dtype)
    out = F.grid_sample(
        x - fill, grid, interpolation, 'zeros', align_corners=False) + fill
    out = out.clamp(0, 255)
    return out.round() if quantise else out
