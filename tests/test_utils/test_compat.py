"""mmlt_hybrid.compat: torch's weights-only loader and mmengine checkpoints.

Real checkpoints are written by mmengine Runners in this process (tiny
stock-config runs): epoch-based with MultiStepLR and validation, with
CpuAmpOptimWrapper, and iteration-based with AdamW, LinearLR +
CosineAnnealingLR and EMAHook.
"""
import collections
import io
import os
import pickle
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from tool_runner import (
    TINY_CONFIG,
    python_tool,
    run,
    tiny_cfg_options,
    tiny_overrides,
)

from mmlt_hybrid import compat

#: Globals of an mmengine checkpoint that torch does not allow by default,
#: as get_unsafe_globals_in_checkpoint reports them (numpy 2 names).
EXPECTED_UNSAFE = {
    'mmengine.logging.history_buffer.HistoryBuffer',
    'builtins.getattr',
    'numpy.ndarray',
    'numpy.dtype',
    'numpy._core.multiarray._reconstruct',
    'numpy._core.multiarray.scalar',
}


@contextmanager
def only_safe_globals(entries):
    """Temporarily replace torch's user allowlist by ``entries``."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        torch.serialization.add_safe_globals(list(entries))
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def _train(tiny_folder, work_dir, name, images=None, **changes):
    """Train in this process; top-level ``changes`` replace config entries,
    ``images`` keeps the first training and validation images only."""
    cfg = Config.fromfile(str(TINY_CONFIG))
    cfg.merge_from_dict(tiny_overrides(tiny_folder))
    cfg.merge_from_dict({
        'train_dataloader.num_workers': 0,
        'train_dataloader.batch_size': 80,
        'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 10,
    })
    if images:
        cfg.merge_from_dict({
            'train_dataloader.dataset.indices': images,
            'val_dataloader.dataset.indices': images
        })
    for key, value in changes.items():
        cfg[key] = value
    cfg.log_level = 'WARNING'
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    Runner.from_cfg(cfg).train()
    return cfg


@pytest.fixture(scope='module')
def checkpoints(tiny_folder, tmp_path_factory):
    """Three real checkpoints and the configs that wrote them."""
    root = tmp_path_factory.mktemp('compat')
    epoch_cfg = _train(tiny_folder, root / 'epoch', 'compat_epoch')
    amp_cfg = _train(
        tiny_folder,
        root / 'amp',
        'compat_amp',
        images=16,  # one step: bf16 is emulated (slow) on most CPUs
        optim_wrapper=dict(
            type='CpuAmpOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))
    iter_cfg = _train(
        tiny_folder,
        root / 'iter',
        'compat_iter',
        train_cfg=dict(by_epoch=False, max_iters=4, val_interval=2),
        param_scheduler=[
            dict(
                type='LinearLR',
                start_factor=0.1,
                by_epoch=False,
                begin=0,
                end=2),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=2, end=4)
        ],
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        custom_hooks=[dict(type='EMAHook')])
    return dict(
        epoch=(root / 'epoch' / 'epoch_1.pth', epoch_cfg),
        amp=(root / 'amp' / 'epoch_1.pth', amp_cfg),
        iter=(root / 'iter' / 'iter_4.pth', iter_cfg))


def test_real_checkpoints_load_weights_only(checkpoints):
    """With compat registered, nothing in the checkpoints is unsafe and
    torch.load(weights_only=True) restores mmengine's objects."""
    for path, _ in checkpoints.values():
        assert torch.serialization.get_unsafe_globals_in_checkpoint(
            str(path)) == []
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        loss = ckpt['message_hub']['log_scalars']['train/loss']
        assert isinstance(loss, HistoryBuffer)
        assert loss.statistics('mean') == pytest.approx(
            float(np.mean(loss.data[0])))
        assert isinstance(ckpt['message_hub']['runtime_info']['eta'],
                          np.float64)
    epoch = torch.load(checkpoints['epoch'][0], weights_only=True)
    assert epoch['param_schedulers'][0]['milestones'] == {100: 1, 150: 1}
    iters = torch.load(checkpoints['iter'][0], weights_only=True)
    assert 'ema_state_dict' in iters
    assert 'exp_avg' in iters['optimizer']['state'][0]


def test_registered_globals_are_the_needed_ones(checkpoints):
    """Without compat, torch names exactly EXPECTED_UNSAFE; each registered
    entry is needed by at least one real checkpoint.

    ``collections.Counter`` (MultiStepLR milestones) is allowed by torch
    already and the ``numpy.core`` names serve numpy-1 files (tested below),
    so those are not expected to fail here.
    """
    paths = [path for path, _ in checkpoints.values()]
    with only_safe_globals([]):
        unsafe = set()
        for path in paths:
            unsafe |= set(
                torch.serialization.get_unsafe_globals_in_checkpoint(
                    str(path)))
        assert unsafe == EXPECTED_UNSAFE

    def loads_all(entries):
        with only_safe_globals(entries):
            try:
                for path in paths:
                    torch.load(path, map_location='cpu', weights_only=True)
            except pickle.UnpicklingError:
                return False
            return True

    assert loads_all(compat.SAFE_GLOBALS)
    optional = [
        entry for entry in compat.SAFE_GLOBALS
        if entry is collections.Counter or (
            isinstance(entry, tuple) and entry[1].startswith('numpy.core.'))
    ]
    for entry in compat.SAFE_GLOBALS:
        if any(entry is other for other in optional):
            continue
        rest = [other for other in compat.SAFE_GLOBALS if other is not entry]
        assert not loads_all(rest), f'{entry} is not needed'


def test_numpy1_module_names_load():
    """Files written under numpy 1 name ``numpy.core.multiarray``."""
    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    data = pickle.dumps(dict(a=array, s=np.float64(2.5)), protocol=2)
    assert b'numpy._core.multiarray' in data
    old_style = data.replace(b'numpy._core.multiarray',
                             b'numpy.core.multiarray')
    from torch import _weights_only_unpickler
    loaded = _weights_only_unpickler.load(io.BytesIO(old_style))
    np.testing.assert_array_equal(loaded['a'], array)
    assert loaded['s'] == 2.5


def test_resume_from_each_checkpoint(checkpoints, tmp_path):
    """Runner.resume reads every kind of checkpoint (weights-only)."""
    for kind, (path, cfg) in checkpoints.items():
        cfg = cfg.copy()
        cfg.work_dir = str(tmp_path / kind)
        cfg.experiment_name = f'compat_resume_{kind}'
        cfg.resume = True
        cfg.load_from = str(path)
        if kind == 'iter':
            cfg.train_cfg = dict(by_epoch=False, max_iters=5, val_interval=2)
        else:
            cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
        runner = Runner.from_cfg(cfg)
        runner.train()
        # two epochs of 3 steps (240 images, batch 80), of 1 for amp
        assert runner.iter == dict(iter=5, epoch=2 * 3, amp=2 * 1)[kind]


class Foreign:
    """A class the loader has never been told about."""

    def __init__(self):
        self.value = 1


class RunsCode:
    """Pickles as a call to ``exec`` that writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").write("ran")', ))


class CallsSystem:
    """Pickles as ``os.system('touch <marker>')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class ReadsAttribute:
    """Pickles as ``getattr(HistoryBuffer, '__init__')``."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def _fake_checkpoint(payload):
    return dict(
        meta=dict(epoch=1, iter=1),
        state_dict={'w': torch.zeros(2)},
        extra=payload)


@pytest.mark.parametrize('payload, message', [
    (Foreign(), 'Foreign'),
    (ReadsAttribute(), 'Refusing getattr'),
])
def test_foreign_objects_are_refused(payload, message, tmp_path):
    """A class not on the list, and getattr beyond HistoryBuffer methods."""
    path = tmp_path / 'foreign.pth'
    torch.save(_fake_checkpoint(payload), path)
    with pytest.raises(pickle.UnpicklingError, match=message):
        torch.load(path)


def test_code_in_checkpoint_is_not_run(tmp_path):
    """exec/os.system payloads are refused and never run."""
    for payload_type in (RunsCode, CallsSystem):
        marker = tmp_path / f'{payload_type.__name__}.marker'
        path = tmp_path / f'{payload_type.__name__}.pth'
        torch.save(_fake_checkpoint(payload_type(marker)), path)
        # The payload is live: unrestricted unpickling runs it.
        torch.load(path, weights_only=False)
        assert marker.exists()
        marker.unlink()
        with pytest.raises(
                pickle.UnpicklingError, match='Weights only load failed'):
            torch.load(path)
        assert not marker.exists()


def test_tools_refuse_crafted_checkpoint(tiny_folder, tmp_path):
    """load_from, --resume and tools/test.py stop with torch's
    UnpicklingError on a crafted file, and its code does not run."""
    marker = tmp_path / 'ran.marker'
    evil = tmp_path / 'evil.pth'
    torch.save(_fake_checkpoint(RunsCode(marker)), evil)
    options = tiny_cfg_options(tiny_folder)
    commands = {
        'load_from':
        python_tool('train.py', TINY_CONFIG, '--work-dir', tmp_path / 'a',
                    '--cfg-options', *options, f'load_from={evil}'),
        'resume':
        python_tool('train.py', TINY_CONFIG, '--work-dir', tmp_path / 'b',
                    '--resume', evil, '--cfg-options', *options),
        'test':
        python_tool('test.py', TINY_CONFIG, evil, '--work-dir', tmp_path / 'c',
                    '--cfg-options', *options),
    }
    for name, command in commands.items():
        result = run(command, check=False)
        assert result.returncode != 0, name
        assert '_pickle.UnpicklingError: Weights only load failed' in \
            result.stderr, (name, result.stderr[-3000:])
        assert 'Unsupported global: GLOBAL exec' in result.stderr, name
        assert not marker.exists(), name
