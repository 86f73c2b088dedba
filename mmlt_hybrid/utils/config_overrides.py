"""Config edits made by tools/train.py and tools/test.py."""
import logging
import os.path as osp
from typing import Any, Iterable, List, Optional

from mmengine.config import Config
from mmengine.device import get_device
from mmengine.logging import print_log

from .cpu_info import NATIVE_BF16_FLAGS, has_native_bf16, read_cpuinfo

_AMP_WRAPPERS = ('OptimWrapper', 'AmpOptimWrapper', 'CpuAmpOptimWrapper')
# Keys of mmengine's AmpOptimWrapper that CpuAmpOptimWrapper does not take.
_GPU_AMP_ONLY_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


def require_file(path: str, what: str, expected: Optional[str] = None) -> None:
    """Raise a clear error when a local input file is missing or no file.

    Args:
        path (str): The path given on the command line or in the config.
        what (str): What the file is, for the message (e.g. ``'config'``).
        expected (str, optional): What was expected instead of a folder or a
            special file, for the message. Defaults to ``'a <what> file'``.

    Raises:
        FileNotFoundError: If nothing exists at ``path``. Remote paths
            (``scheme://...``) are not checked.
        IsADirectoryError: If ``path`` is a folder.
        ValueError: If ``path`` exists but is not a regular file (a device,
            a pipe, a socket).
    """
    if '://' in str(path):
        return
    if osp.isfile(path):
        return
    expected = expected or f'a {what} file'
    if osp.isdir(path):
        raise IsADirectoryError(
            f'{what} {path!r} is a directory, not a file; expected '
            f'{expected}' + ('' if expected.endswith('.') else '.'))
    if osp.exists(path):
        raise ValueError(
            f'{what} {path!r} is not a regular file (a device, a pipe or a '
            f'socket); expected {expected}' +
            ('' if expected.endswith('.') else '.'))
    raise FileNotFoundError(f'{what} file not found: {path!r} '
                            f'(absolute: {osp.abspath(path)!r})')


def _wrapper_type_name(optim_wrapper: dict) -> str:
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    return wrapper_type if isinstance(wrapper_type, str) else getattr(
        wrapper_type, '__name__', str(wrapper_type))


def enable_amp(cfg: Config,
               device: Optional[str] = None,
               cpu_flags: Optional[List[str]] = None) -> bool:
    """Switch the optimizer wrapper to mixed precision for the device.

    On CUDA (or another accelerator mmengine supports) the wrapper becomes
    mmengine's ``AmpOptimWrapper`` with ``loss_scale='dynamic'`` unless the
    config sets one (float16 autocast, dynamic loss scaling). On a CPU that
    computes bfloat16 natively (:func:`has_native_bf16`) it becomes
    ``CpuAmpOptimWrapper`` (bfloat16 autocast, no loss scaling). On a CPU
    without, bf16 would be emulated and slower than float32, so the wrapper
    is left as the config has it and a warning says why.

    Args:
        cfg (Config): The run's config, changed in place.
        device (str, optional): ``'cpu'``, ``'cuda'``... Defaults to
            mmengine's ``get_device()``.
        cpu_flags (list[str], optional): The CPU's flags. Defaults to those
            of ``/proc/cpuinfo``.

    Returns:
        bool: Whether the wrapper was switched to mixed precision.

    Raises:
        ValueError: If ``optim_wrapper.type`` is a wrapper that cannot be
            switched (only OptimWrapper, AmpOptimWrapper and
            CpuAmpOptimWrapper can).
    """
    device = get_device() if device is None else device
    optim_wrapper = cfg.optim_wrapper
    name = _wrapper_type_name(optim_wrapper)
    if name not in _AMP_WRAPPERS:
        raise ValueError(
            f'--amp: optim_wrapper.type={name!r} cannot be switched to mixed '
            f'precision; allowed types are {_AMP_WRAPPERS}.')
    if device == 'cpu':
        cpu = read_cpuinfo()
        flags = cpu['flags'] if cpu_flags is None else cpu_flags
        if not has_native_bf16(flags):
            print_log(
                f'--amp ignored: this CPU ({cpu["model"]}) has no native '
                f'bfloat16 (none of the flags {NATIVE_BF16_FLAGS}), so bf16 '
                'autocast would be emulated and slower than float32 (about '
                '13x slower for a ResNet-32 step on an AVX2 CPU); training '
                f'stays in float32 with {name}. To force bf16 on this CPU set '
                "optim_wrapper.type='CpuAmpOptimWrapper' in the config.",
                logger='current',
                level=logging.WARNING)
            return False
        optim_wrapper.type = 'CpuAmpOptimWrapper'
        make_optim_wrapper_cpu_compatible(cfg)
    else:
        if name == 'CpuAmpOptimWrapper':
            optim_wrapper.pop('dtype', None)
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')
    print_log(
        f'--amp: mixed precision on {device} with {optim_wrapper.type}.',
        logger='current')
    return True


def make_optim_wrapper_cpu_compatible(cfg: Config) -> None:
    """Replace mmengine's GPU-only ``AmpOptimWrapper`` for a CPU run.

    ``AmpOptimWrapper`` asserts that a GPU is present. On the CPU it is
    replaced by ``CpuAmpOptimWrapper`` and its GPU-only keys (``loss_scale``,
    ``dtype``, ``use_fsdp``) are dropped, with a log message. Other wrappers
    are left alone.

    Args:
        cfg (Config): The run's config, changed in place.
    """
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        return
    name = _wrapper_type_name(optim_wrapper)
    if name not in ('AmpOptimWrapper', 'CpuAmpOptimWrapper'):
        return
    dropped = {
        key: optim_wrapper.pop(key)
        for key in _GPU_AMP_ONLY_KEYS if key in optim_wrapper
        and not (key == 'dtype' and optim_wrapper[key] == 'bfloat16')
    }
    optim_wrapper.type = 'CpuAmpOptimWrapper'
    if name == 'AmpOptimWrapper' or dropped:
        print_log(
            'No CUDA device: mixed precision runs as CPU bfloat16 autocast '
            f'(CpuAmpOptimWrapper) instead of {name}' +
            (f'; ignoring {dropped}' if dropped else '') + '.',
            logger='current',
            level=logging.WARNING)


def _types_in(evaluator: Any) -> Iterable[str]:
    """Yield the metric type names of an evaluator config."""
    if evaluator is None:
        return
    if isinstance(evaluator, (list, tuple)):
        for item in evaluator:
            yield from _types_in(item)
        return
    if isinstance(evaluator, dict):
        if 'metrics' in evaluator:
            yield from _types_in(evaluator['metrics'])
        if 'type' in evaluator:
            metric_type = evaluator['type']
            name = metric_type if isinstance(metric_type, str) else getattr(
                metric_type, '__name__', '')
            yield name.split('.')[-1]


def _hook_names(cfg: Config) -> List[str]:
    """The type names of ``cfg.custom_hooks``."""
    names = []
    for hook in cfg.get('custom_hooks') or []:
        hook_type = hook.get('type') if isinstance(hook, dict) else hook
        name = hook_type if isinstance(hook_type, str) else getattr(
            hook_type, '__name__',
            type(hook_type).__name__)
        names.append(name.split('.')[-1])
    return names


def add_data_hooks(cfg: Config) -> List[str]:
    """Add the hooks that join the model to its training data, where the
    config needs them and lacks them.

    ``ClassCountsHook`` (the training-set class counts for
    ``LongTailAccuracy`` and the model's class priors) where
    ``val_evaluator`` or ``test_evaluator`` has a ``LongTailAccuracy`` or
    the config trains (has a ``train_dataloader``); ``ModelDataCheckHook``
    (the model checked against its training data before training, and
    every evaluation against the model's training data: the metric's class
    counts, the evaluation set's classes) where it trains or evaluates
    (has a ``val_dataloader`` or ``test_dataloader``). Each is appended to
    ``custom_hooks`` unless already there.

    Args:
        cfg (Config): The run's config, changed in place.

    Returns:
        list[str]: The names of the hooks added.
    """
    metric_types = set(_types_in(cfg.get('val_evaluator'))) | set(
        _types_in(cfg.get('test_evaluator')))
    trains = bool(cfg.get('train_dataloader'))
    wanted = ['ClassCountsHook'] * (
        trains or 'LongTailAccuracy' in metric_types)
    evaluates = bool(cfg.get('val_dataloader') or cfg.get('test_dataloader'))
    wanted += ['ModelDataCheckHook'] * (trains or evaluates)
    added = [name for name in wanted if name not in _hook_names(cfg)]
    if added:
        cfg.custom_hooks = list(cfg.get('custom_hooks')
                                or []) + [dict(type=name) for name in added]
    return added
