"""Mixed-precision optimizer wrapper for training on the CPU."""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CpuAmpOptimWrapper(OptimWrapper):
    """Optimizer wrapper that runs the forward pass under CPU autocast.

    mmengine's ``AmpOptimWrapper`` asserts that a GPU (or NPU/MLU/MUSA) is
    present, so ``--amp`` cannot use it on a CPU-only machine. This wrapper
    keeps everything of :class:`mmengine.optim.OptimWrapper` (gradient
    accumulation, clipping, state dict) and only adds
    ``torch.autocast(device_type='cpu', dtype=torch.bfloat16)`` around the
    forward pass in :meth:`optim_context`.

    bfloat16 has the exponent range of float32, so gradients do not underflow
    and no loss scaling (``GradScaler``) is needed; parameters, gradients and
    the optimizer state stay in float32. float16 is not offered here because
    without a loss scaler its small range makes underflowing gradients
    likely.

    Args:
        dtype (str or torch.dtype): Autocast data type. Only ``'bfloat16'``
            (or ``torch.bfloat16``) is allowed. Defaults to ``'bfloat16'``.
        **kwargs: Keyword arguments passed to
            :class:`mmengine.optim.OptimWrapper` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).

    Raises:
        ValueError: If ``dtype`` is not bfloat16.
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(
                f"CpuAmpOptimWrapper: dtype must be 'bfloat16', got "
                f'{dtype!r}. CPU mixed precision here is bfloat16 without '
                'loss scaling; float16 would need a GradScaler.')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Enable gradient-accumulation handling and CPU bf16 autocast.

        Args:
            model (nn.Module): The training model.
        """
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
