"""Let torch's weights-only loader read mmengine checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: it unpickles
only tensors, plain containers and an allowlist of globals. mmengine 0.10.7
calls ``torch.load`` without ``weights_only`` for ``load_from``, ``resume``
and ``tools/test.py``, and its checkpoints hold more than weights:

- ``message_hub.log_scalars``: :class:`mmengine.logging.HistoryBuffer`
  objects, which hold numpy arrays and, in their pickled state, the
  statistics methods ``HistoryBuffer.min/max/current/mean``. Python pickles
  such methods as ``getattr(HistoryBuffer, 'min')``, so the file names the
  global ``builtins.getattr``;
- ``message_hub.runtime_info['eta']``: a numpy scalar (``np.float64``);
  numpy arrays and scalars need ``numpy.ndarray``, ``numpy.dtype``, the
  dtype classes ``Float64DType``/``Int64DType`` (their state is restored
  with BUILD) and the reconstructors ``_reconstruct``/``scalar``, under
  numpy 2's ``numpy._core`` and numpy 1's ``numpy.core`` paths;
- ``param_schedulers``: ``MultiStepLR`` keeps its milestones in a
  ``collections.Counter``;
- ``optimizer`` (also ``AmpOptimWrapper``'s ``loss_scaler`` and our
  ``CpuAmpOptimWrapper``): tensors and Python numbers only.

Importing this module registers exactly those globals with
``torch.serialization.add_safe_globals``. The list was taken from
``torch.serialization.get_unsafe_globals_in_checkpoint`` (plus loading, for
the dtype classes, which only BUILD names) on real checkpoints: epoch-based
with MultiStepLR and validation, with ``--amp`` (CpuAmpOptimWrapper),
iteration-based with AdamW, LinearLR + CosineAnnealingLR and EMAHook, and
Hybrid-SC / Hybrid-PSC runs of mmlt_hybrid's own components, which add no
further globals (tests/test_utils/test_compat.py checks the list on such
files). ``builtins.getattr`` itself is *not* allowed: the name is bound to
:func:`history_buffer_attribute`, which returns only the four statistics
methods of ``HistoryBuffer`` and refuses anything else. Any other global in a
checkpoint still makes torch raise ``pickle.UnpicklingError``; unrestricted
pickle loading (``weights_only=False``) is never used.
"""
import collections
import pickle
from typing import Callable

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray

#: The statistics methods HistoryBuffer pickles by reference.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def history_buffer_attribute(owner: type, name: str) -> Callable:
    """Stand-in for ``getattr`` while loading a checkpoint.

    A pickled :class:`HistoryBuffer` refers to its statistics methods as
    ``getattr(HistoryBuffer, name)``. Allowing the real ``getattr`` would let
    a crafted file read any attribute of any object it can build; this
    function answers only those references.

    Args:
        owner (type): The object whose attribute is asked for; must be
            :class:`HistoryBuffer`.
        name (str): The attribute; one of :data:`HISTORY_BUFFER_METHODS`.

    Returns:
        Callable: ``getattr(HistoryBuffer, name)``.

    Raises:
        pickle.UnpicklingError: For any other owner or name.
    """
    if owner is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refusing getattr({owner!r}, {name!r}) while loading a checkpoint: '
        'mmlt_hybrid allows getattr only for HistoryBuffer statistics methods '
        f'{HISTORY_BUFFER_METHODS}.')


def _numpy_globals(name: str, func: Callable) -> list:
    """``func`` under the numpy 2 and the numpy 1 module path."""
    return [(func, f'numpy._core.multiarray.{name}'),
            (func, f'numpy.core.multiarray.{name}')]


#: Everything registered as safe, as passed to ``add_safe_globals``.
SAFE_GLOBALS = [
    HistoryBuffer,
    (history_buffer_attribute, 'builtins.getattr'),
    np.ndarray,
    np.dtype,
    # BUILD restores a dtype's state on its class: HistoryBuffer holds
    # float64 values and int64 counts, 'eta' is a float64 scalar.
    np.dtypes.Float64DType,
    np.dtypes.Int64DType,
    *_numpy_globals('_reconstruct', _np_multiarray._reconstruct),
    *_numpy_globals('scalar', _np_multiarray.scalar),
    # torch allows Counter by default already; listed to document the need.
    collections.Counter,
]


def register_safe_globals() -> None:
    """Register :data:`SAFE_GLOBALS` with torch (idempotent)."""
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


register_safe_globals()
