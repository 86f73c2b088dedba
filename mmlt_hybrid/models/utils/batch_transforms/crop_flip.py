"""Geometric batch transforms: random crop (after padding) and random
flip."""
import numbers
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ....registry import BATCH_TRANSFORMS
from ....validation import check, check_choice
from .base import (
    BaseBatchTransform,
    check_int_pair,
    check_pad_val,
    check_prob,
    fill_like,
    real_numbers,
    uniform,
)


@BATCH_TRANSFORMS.register_module()
class BatchRandomCrop(BaseBatchTransform):
    """Pad every image, then crop it at its own random offset.

    Batched counterpart of mmpretrain's ``RandomCrop`` (with its defaults
    ``pad_if_needed=False, padding_mode='constant'``): each image is padded
    with ``pad_val`` (``padding`` read as by :func:`mmcv.impad`) and cropped
    at an offset uniform over the ``(H' - h + 1) x (W' - w + 1)`` positions
    of the padded ``H' x W'`` image (see :meth:`crop_offsets`). As in the
    counterpart, a crop larger than the padded image is shrunk to it.

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

    Raises:
        ValueError: If a setting is not allowed.
    """

    _repr_keys = ('crop_size', 'padding', 'pad_val')

    def __init__(self,
                 crop_size: Union[int, Sequence[int]],
                 padding: Optional[Union[int, Sequence[int]]] = None,
                 pad_val: Union[numbers.Number, Sequence[numbers.Number]] = 0):
        self.crop_size = check_int_pair(self, 'crop_size', crop_size)
        self.padding = _padding(padding)
        self.pad_val = check_pad_val(self, pad_val)

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw the position of every image's crop.

        The image size is not known here, so the position is drawn as a
        fraction of the number of positions.

        Returns:
            dict: ``rand_h`` and ``rand_w``, float64 ``(B,)`` in ``[0, 1)``:
            the position as a fraction of the number of vertical and
            horizontal positions (see :meth:`crop_offsets`).
        """
        u = torch.rand(
            batch_size,
            2,
            device=device,
            generator=generator,
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
            2,
            rows.clamp(0, h - 1)[:, None, :, None].expand(b, c, crop_h, w))
        out = out.gather(
            3,
            cols.clamp(0, w - 1)[:, None,
                                 None, :].expand(b, c, crop_h, crop_w))
        inside = (((rows >= 0) & (rows < h))[:, None, :, None]
                  & ((cols >= 0) & (cols < w))[:, None, None, :])
        return torch.where(inside, out, fill_like(out, self.pad_val, self))


@BATCH_TRANSFORMS.register_module()
class BatchRandomFlip(BaseBatchTransform):
    """Flip each image with probability ``prob``.

    Batched counterpart of mmcv's ``RandomFlip`` with one direction: each
    image draws whether it is flipped.

    Args:
        prob (float): Probability that an image is flipped. Defaults to 0.5.
        direction (str): ``'horizontal'`` or ``'vertical'``. Defaults to
            ``'horizontal'``.

    Raises:
        ValueError: If a setting is not allowed.
    """

    _repr_keys = ('prob', 'direction')

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal'):
        self.prob = check_prob(self, prob)
        self.direction = check_choice('BatchRandomFlip', 'direction',
                                      direction, ('horizontal', 'vertical'))

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw which images are flipped.

        Returns:
            dict: ``flip``, bool ``(B,)``.
        """
        return dict(flip=uniform(batch_size, device, generator) < self.prob)

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        flipped = imgs.flip(-1 if self.direction == 'horizontal' else -2)
        return torch.where(params['flip'].view(-1, 1, 1, 1), flipped, imgs)


def _padding(padding) -> tuple:
    """``padding`` of :class:`BatchRandomCrop` as ``(left, top, right,
    bottom)``, as mmcv.impad reads it."""
    pads = (0, ) * 4 if padding is None else (padding, ) * 4 if real_numbers(
        [padding]) else tuple(padding) * (4 // len(padding)) if real_numbers(
            padding) and len(padding) in (2, 4) else ()
    check(
        'BatchRandomCrop', 'padding', padding,
        len(pads) == 4
        and all(isinstance(p, numbers.Integral) and p >= 0 for p in pads),
        'None, a non-negative int, or 2 or 4 of them (left/right, '
        'top/bottom or left, top, right, bottom)')
    return pads
