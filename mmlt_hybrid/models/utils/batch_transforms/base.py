"""The base of the batch transforms, their builder, and the checks of the
settings that several of them take."""
import numbers
from typing import Callable, List, Optional, Sequence, Union

import torch
from torch import Tensor

from ....registry import BATCH_TRANSFORMS
from ....validation import check, check_number


class BaseBatchTransform:
    """Base of the batch transforms.

    A batch transform does, for a whole batch ``(B, C, H, W)`` inside the
    data preprocessor, what its per-sample counterpart in the data pipeline
    does for each image: every image (row) draws its own random parameters.
    ``transform(imgs, generator)`` is ``transform.apply(imgs,
    transform.sample_params(B, imgs.device, generator))``:
    :meth:`sample_params` draws one set of parameters per image, on the
    batch's device, from an optional :class:`torch.Generator` (None: torch's
    global generator); :meth:`apply` applies them, deterministically.

    Both use fixed-shape tensor operations only (``torch.where``,
    ``gather``, index arithmetic): nothing is read back to the host, so the
    transforms run unchanged, and without synchronising, on CUDA. Images are
    uint8 or floating (on the 0-255 scale, i.e. not yet normalised); the
    output has the input's dtype. Channels are in the order the data
    pipeline sees them (BGR for images decoded by mmcv), as for the
    counterparts.

    Subclasses define :meth:`sample_params`, :meth:`apply` and
    ``_repr_keys`` (the settings shown by ``repr``), and register in
    ``mmlt_hybrid.registry.BATCH_TRANSFORMS``.
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

        Raises:
            ValueError: If the images do not fit the settings (e.g. their
                number of channels).
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
        params = self.sample_params(imgs.shape[0], imgs.device, generator)
        return self.apply(imgs, params)

    def __repr__(self) -> str:
        settings = ', '.join(f'{key}={getattr(self, key)!r}'
                             for key in self._repr_keys)
        return f'{type(self).__name__}({settings})'


def build_batch_transforms(
        cfgs: Optional[Sequence[Union[dict, Callable]]]) -> List[Callable]:
    """Build batch transforms from configs.

    Args:
        cfgs (Sequence[dict | Callable], optional): Configs (dicts with a
            ``type`` registered in ``BATCH_TRANSFORMS``) and ready callables
            ``f(imgs, generator) -> imgs``, in order. None means none.

    Returns:
        list[Callable]: The transforms, in order.

    Raises:
        TypeError: If ``cfgs`` is not a list, or one of them is neither a
            config nor a callable.
        KeyError: If a config's ``type`` is not in ``BATCH_TRANSFORMS``
            (mmpretrain's batch augments, e.g. Mixup, are not).
    """
    if isinstance(cfgs, (dict, str)) or not isinstance(cfgs,
                                                       (Sequence, type(None))):
        raise TypeError('batch_transforms must be a list of transform '
                        f'configs or callables, got {_describe(cfgs)}')
    transforms = [
        BATCH_TRANSFORMS.build(cfg) if isinstance(cfg, dict) else cfg
        for cfg in cfgs or []
    ]
    for i, transform in enumerate(transforms):
        if not callable(transform):
            raise TypeError(
                f'batch_transforms[{i}]={cfgs[i]!r}: a batch transform config '
                '(a dict with a registered type) or a callable f(images, '
                'generator) is allowed.')
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


def uniform(batch_size: int, device, generator, *shape) -> Tensor:
    """``U[0, 1)`` samples of shape ``(batch_size, *shape)``."""
    return torch.rand(batch_size, *shape, device=device, generator=generator)


def _describe(value) -> str:
    """``type: value`` for error messages (shape and dtype for tensors)."""
    if isinstance(value, Tensor):
        return f'Tensor of shape {tuple(value.shape)} and dtype {value.dtype}'
    return f'{type(value).__name__}: {value!r}'


# Checks of the settings (once, in ``__init__``): each returns the setting
# as the transform keeps it, or raises ValueError naming the transform.


def real_numbers(value) -> bool:
    """Whether ``value`` is a non-empty sequence of real numbers."""
    return isinstance(value, Sequence) and len(value) > 0 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)


def check_prob(transform, prob) -> float:
    """``prob``, a probability in ``[0, 1]``, as a float."""
    return check_number(type(transform).__name__, 'prob', prob, 0, 1)


def check_int_pair(transform, key: str, value) -> tuple:
    """``s`` or ``(h, w)`` as ``(h, w)``, positive ints."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    check(
        type(transform).__name__, key, value,
        real_numbers(pair) and len(pair) == 2
        and all(isinstance(s, numbers.Integral) and s > 0 for s in pair),
        'a positive int or a pair (h, w) of positive ints')
    return tuple(int(s) for s in pair)


# The fill value of the transforms that pad or fill (crop, Cutout, the
# geometric ops of RandAugment): checked as a setting by check_pad_val,
# made a tensor for the images by fill_like.


def check_pad_val(transform, pad_val, key: str = 'pad_val'):
    """``pad_val``: a number (every channel) or a sequence of numbers (one
    per channel), kept as a number or a tuple."""
    check(
        type(transform).__name__, key, pad_val,
        real_numbers([pad_val]) or real_numbers(pad_val),
        'a number or a sequence of numbers (one per channel)')
    return pad_val if real_numbers([pad_val]) else tuple(pad_val)


def fill_like(imgs: Tensor,
              pad_val,
              transform,
              key: str = 'pad_val') -> Tensor:
    """The fill ``(1, C or 1, 1, 1)`` of ``imgs``' dtype and device.

    Args:
        imgs (Tensor): Images ``(B, C, H, W)``.
        pad_val (Number | tuple): A setting from :func:`check_pad_val`; a
            single value fills every channel.
        transform (BaseBatchTransform): Whose setting it is (for errors).
        key (str): The setting's name (for errors). Defaults to
            ``'pad_val'``.

    Returns:
        Tensor: The fill values, of the dtype of ``imgs``.

    Raises:
        ValueError: If a tuple has neither one value nor one per channel.
    """
    values = pad_val if isinstance(pad_val, tuple) else (pad_val, )
    channels = imgs.shape[1]
    check(
        type(transform).__name__, key, pad_val,
        len(values) in (1, channels),
        f'a number or one value per channel ({channels})')
    return torch.stack([imgs.new_full((), v)
                        for v in values]).view(1, -1, 1, 1)
