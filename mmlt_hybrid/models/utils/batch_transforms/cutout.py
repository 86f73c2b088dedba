"""Batched Cutout: a rectangle of each image, at its own random place,
filled with a constant."""
from numbers import Number
from typing import Sequence, Union

import torch
from torch import Tensor

from ....registry import BATCH_TRANSFORMS
from .base import (
    BaseBatchTransform,
    check_int_pair,
    check_pad_val,
    check_prob,
    fill_like,
)


@BATCH_TRANSFORMS.register_module()
class BatchCutout(BaseBatchTransform):
    """Fill a ``shape`` rectangle of each image, at its own random place,
    with ``pad_val``.

    Batched counterpart of mmpretrain's ``Cutout`` (mmcv's ``cutout``):
    the centre ``(y0, x0)`` is drawn as ``np.random.uniform(h)`` and
    ``np.random.uniform(w)`` do, i.e. uniform over ``(1, h]`` and
    ``(1, w]``; the rectangle spans rows ``int(max(0, y0 - cut_h / 2))``
    to that plus ``cut_h`` (cut at the border), columns alike. Pixel-exact
    against the counterpart for the same centre.

    Args:
        shape (int | Sequence[int]): ``(cut_h, cut_w)``, or one int for both.
        pad_val (Number | Sequence[Number]): Fill value, one for every
            channel or one per channel. Defaults to 128.
        prob (float): Probability that an image is cut. Defaults to 1.

    Raises:
        ValueError: If a setting is not allowed, or (when applied)
            ``pad_val`` has neither one value nor one per channel.
    """

    _repr_keys = ('shape', 'pad_val', 'prob')

    def __init__(self,
                 shape: Union[int, Sequence[int]],
                 pad_val: Union[Number, Sequence[Number]] = 128,
                 prob: float = 1.0):
        self.shape = check_int_pair(self, 'shape', shape)
        self.pad_val = check_pad_val(self, pad_val)
        self.prob = check_prob(self, prob)

    def sample_params(self, batch_size, device, generator=None) -> dict:
        """Draw whether each image is cut, and where.

        Returns:
            dict: ``centre``, float64 ``(B, 2)`` in ``[0, 1)``: the draws
            that :meth:`centres` turns into pixels; ``applied``, bool
            ``(B,)``.
        """
        u = torch.rand(
            batch_size,
            3,
            device=device,
            generator=generator,
            dtype=torch.float64)
        return dict(centre=u[:, :2], applied=u[:, 2] < self.prob)

    def centres(self, params: dict, height: int, width: int) -> tuple:
        """The centres ``(y0, x0)``, float64 ``(B,)``, in ``(1, h]`` and
        ``(1, w]``, as ``np.random.uniform(h)`` (low ``h``, high 1)."""
        u = params['centre']
        return height + (1. - height) * u[:, 0], width + (1. - width) * u[:, 1]

    def cut_boxes(self, params: dict, height: int, width: int) -> tuple:
        """The rectangles as int64 ``(B,)`` ``(top, left, bottom, right)``,
        bottom and right excluded."""
        y0, x0 = self.centres(params, height, width)
        top = (y0 - self.shape[0] / 2.).clamp(min=0).long()
        left = (x0 - self.shape[1] / 2.).clamp(min=0).long()
        return (top, left, (top + self.shape[0]).clamp(max=height),
                (left + self.shape[1]).clamp(max=width))

    def apply(self, imgs: Tensor, params: dict) -> Tensor:
        h, w = imgs.shape[-2:]
        top, left, bottom, right = self.cut_boxes(params, h, w)
        rows = torch.arange(h, device=imgs.device)
        cols = torch.arange(w, device=imgs.device)
        cut = (((rows >= top[:, None]) & (rows < bottom[:, None]))[:, :, None]
               & ((cols >= left[:, None]) & (cols < right[:, None]))[:, None])
        cut = (cut & params['applied'].view(-1, 1, 1))[:, None]
        return torch.where(cut, fill_like(imgs, self.pad_val, self), imgs)
