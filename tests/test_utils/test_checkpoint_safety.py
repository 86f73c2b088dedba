"""Checkpoints through tools/train.py and tools/test.py: safe to write, load.

- Atomic writes: a checkpoint (and ``last_checkpoint``) is written to a
  temporary file in the same folder and renamed onto its name, so a process
  killed while saving leaves the previous file, never a truncated one. The
  fault-injection test kills a training process inside such a write.
- Damaged checkpoints (empty, cut short, either torch format) given to
  tools/test.py, ``--resume PATH``, bare ``--resume`` or ``load_from`` are
  refused before the runner starts, naming the file.
- Strict loading for evaluation: tools/test.py refuses a checkpoint of
  another model and lists the keys; ``--non-strict`` loads what fits.
- Auto resume says when there is nothing to resume, and finds the latest
  checkpoint of a work dir that was moved.

A stock ResNet-18 config (tests/configs/tiny_resnet18_cifar10.py, shrunk by
tests/tool_runner.py) trains on 40 generated images: 3 iterations an epoch.
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import textwrap
import time

import pytest
import torch
from conftest import make_image_folder
from mmengine.fileio import get_file_backend
from mmengine.hooks import CheckpointHook
from tool_runner import (
    REPO_ROOT,
    TINY_CONFIG,
    load_tool,
    python_tool,
    run,
    tiny_cfg_options,
)

import mmlt_hybrid  # noqa: F401  (safe globals for torch.load below)


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """The tools' parse_args export LOCAL_RANK; undo that after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """10 classes, 4 training images and 1 test image each."""
    return make_image_folder(
        tmp_path_factory.mktemp('ckpt_data'), [4] * 10, test_per_class=1)


def _options(folder, **extra):
    return tiny_cfg_options(folder, train_dataloader__num_workers=0, **extra)


def _train(work_dir, folder, *args, max_epochs=1, **kwargs):
    return run(
        python_tool('train.py', TINY_CONFIG, '--work-dir',
                    work_dir, '--no-validate', *args, '--cfg-options',
                    *_options(folder), f'train_cfg.max_epochs={max_epochs}'),
        **kwargs)


@pytest.fixture(scope='module')
def trained(folder, tmp_path_factory):
    """One epoch trained with bare ``--resume`` in a new work dir, then moved.

    The work dir's ``last_checkpoint`` names ``<first>/epoch_1.pth``, which
    no longer exists after the move.
    """
    root = tmp_path_factory.mktemp('trained')
    first, moved = root / 'first', root / 'moved'
    result = _train(first, folder, '--resume')
    first.rename(moved)
    return dict(
        first=first,
        work_dir=moved,
        stdout=result.stdout,
        checkpoint=moved / 'epoch_1.pth')


def _load(path):
    return torch.load(path, map_location='cpu')  # weights only (torch>=2.6)


def _named_by_last_checkpoint(work_dir):
    with open(work_dir / 'last_checkpoint') as f:
        return f.read().strip()


# ---------------------------------------------------------------- resume


def test_auto_resume_without_checkpoint_says_so(trained):
    """Bare ``--resume`` in an empty work dir: a plain warning, from
    scratch."""
    stdout = trained['stdout']
    assert 'latest checkpoint None' not in stdout
    assert re.search(
        r'WARNING - Resume: no checkpoint found in '
        rf'{re.escape(str(trained["first"]))} .*training starts from '
        'scratch', stdout), stdout[-3000:]
    assert _load(trained['checkpoint'])['meta']['epoch'] == 1


def test_auto_resume_in_a_moved_work_dir(trained, folder, tmp_path):
    """``last_checkpoint`` names the old place; the moved file is used."""
    work_dir = tmp_path / 'elsewhere'
    shutil.copytree(trained['work_dir'], work_dir)
    assert _named_by_last_checkpoint(work_dir) == str(trained['first'] /
                                                      'epoch_1.pth')
    result = _train(work_dir, folder, '--resume', max_epochs=2)
    assert f'resuming from {work_dir / "epoch_1.pth"}' in result.stdout
    assert 'resumed epoch: 1' in result.stdout
    assert _load(work_dir / 'epoch_2.pth')['meta']['epoch'] == 2
    assert _named_by_last_checkpoint(work_dir) == str(work_dir / 'epoch_2.pth')


def test_auto_resume_names_a_lost_last_checkpoint(folder, tmp_path):
    """``last_checkpoint`` names a file found nowhere: said before building."""
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    lost = str(tmp_path / 'gone' / 'epoch_9.pth')
    (work_dir / 'last_checkpoint').write_text(lost)
    argv = [
        str(TINY_CONFIG), '--work-dir',
        str(work_dir), '--resume', '--cfg-options', *_options(folder)
    ]
    with pytest.raises(
            FileNotFoundError,
            match=rf'last_checkpoint names .*{re.escape(lost)}.*'
            r'--resume PATH'):
        load_tool('train.py').main(argv)


# ------------------------------------------------------- damaged inputs


def _damaged(kind, intact, path):
    """Write a damaged copy of ``intact`` to ``path`` and return it."""
    data = intact.read_bytes()
    if kind == 'legacy':  # torch's pre-1.6 format, cut short
        legacy = path.with_suffix('.legacy')
        torch.save(_load(intact), legacy, _use_new_zipfile_serialization=False)
        data = legacy.read_bytes()
    path.write_bytes(b'' if kind == 'empty' else data[:len(data) // 2])
    return path


@pytest.mark.parametrize('kind', ['truncated', 'empty', 'legacy'])
@pytest.mark.parametrize('how',
                         ['test', 'resume_path', 'load_from', 'auto_resume'])
def test_damaged_checkpoint_is_named(how, kind, trained, folder, tmp_path):
    """Refused before the runner starts, with the path and the problem."""
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    bad = _damaged(kind, trained['checkpoint'], work_dir / 'epoch_1.pth')
    options = ['--work-dir', str(work_dir), '--cfg-options', *_options(folder)]
    tool = 'test' if how == 'test' else 'train'
    argv = [str(TINY_CONFIG)] + {
        'test': [str(bad)] + options,
        'resume_path': ['--resume', str(bad)] + options,
        'load_from': options + [f'load_from={bad}'],
        'auto_resume': ['--resume'] + options,
    }[how]
    if how == 'auto_resume':
        (work_dir / 'last_checkpoint').write_text(str(bad))
    with pytest.raises(ValueError) as error:
        load_tool(f'{tool}.py').main(argv)
    message = str(error.value)
    assert str(bad) in message
    assert re.search('damaged|truncated', message), message
    if kind == 'empty':
        assert '0 bytes' in message


def test_intact_checkpoints_pass_the_check(trained, tmp_path):
    from mmlt_hybrid.utils.checkpoints import check_checkpoint
    check_checkpoint(str(trained['checkpoint']), 'checkpoint')
    legacy = tmp_path / 'legacy.pth'
    torch.save(
        _load(trained['checkpoint']),
        legacy,
        _use_new_zipfile_serialization=False)
    check_checkpoint(str(legacy), 'checkpoint')


# ------------------------------------------------------ strict loading


@pytest.fixture(scope='module')
def mismatched(trained, tmp_path_factory):
    """The trained checkpoint with one key dropped, one added, one resized."""
    checkpoint = _load(trained['checkpoint'])
    state = checkpoint['state_dict']
    assert tuple(state['backbone.conv1.weight'].shape) == (16, 3, 3, 3)
    del state['head.fc.bias']
    state['head.fc.extra'] = torch.zeros(2)
    state['backbone.conv1.weight'] = torch.zeros(8, 3, 3, 3)
    path = tmp_path_factory.mktemp('mismatched') / 'other_model.pth'
    torch.save(checkpoint, path)
    return path


def _test_argv(checkpoint, folder, tmp_path, *extra, options=()):
    return [
        str(TINY_CONFIG),
        str(checkpoint), '--work-dir',
        str(tmp_path / 'wd'), *extra, '--cfg-options', *_options(folder),
        *options
    ]


def test_test_tool_refuses_a_checkpoint_of_another_model(
        mismatched, folder, tmp_path):
    with pytest.raises(ValueError) as error:
        load_tool('test.py').main(_test_argv(mismatched, folder, tmp_path))
    message = str(error.value)
    assert str(mismatched) in message
    assert re.search(r'missing .*: head\.fc\.bias\b', message), message
    assert re.search(r'unexpected .*: head\.fc\.extra\b', message), message
    assert re.search(
        r'backbone\.conv1\.weight: \(8, 3, 3, 3\) in the checkpoint, '
        r'\(16, 3, 3, 3\) in the model', message), message
    assert '--non-strict' in message


def test_test_tool_refuses_another_head(trained, folder, tmp_path):
    """Same weights, config with 7 classes: both head tensors differ."""
    with pytest.raises(ValueError) as error:
        load_tool('test.py').main(
            _test_argv(
                trained['checkpoint'],
                folder,
                tmp_path,
                options=['model.head.num_classes=7']))
    message = str(error.value)
    assert 'head.fc.weight: (10, 128) in the checkpoint, (7, 128)' in message
    assert 'head.fc.bias: (10,) in the checkpoint, (7,)' in message
    assert 'missing' not in message and 'unexpected' not in message


def test_non_strict_evaluates_what_fits(mismatched, trained, folder, tmp_path,
                                        capsys):
    test_tool = load_tool('test.py')
    with pytest.raises(SystemExit):
        test_tool.parse_args(['--help'])
    assert '--non-strict' in capsys.readouterr().out
    metrics = test_tool.main(
        _test_argv(mismatched, folder, tmp_path, '--non-strict'))
    assert 0 <= metrics['accuracy/top1'] <= 100
    # The matching checkpoint passes the strict check.
    metrics = test_tool.main(
        _test_argv(trained['checkpoint'], folder, tmp_path / 'strict'))
    assert 0 <= metrics['accuracy/top1'] <= 100


# ------------------------------------------------------- atomic writes


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_replaces_only_complete_files(tmp_path):
    from mmlt_hybrid.utils.checkpoints import atomic_write
    target = tmp_path / 'epoch_3.pth'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='stop'):
        with atomic_write(target) as f:
            f.write(b'new, half')
            assert target.read_bytes() == b'old'
            raise RuntimeError('stop')
    assert target.read_bytes() == b'old'
    assert _names(tmp_path) == ['epoch_3.pth']  # temporary file removed

    with atomic_write(target) as f:
        f.write(b'new')
    assert target.read_bytes() == b'new'
    reference = tmp_path / 'plain'
    reference.write_bytes(b'')
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(
        reference.stat().st_mode)
    assert _names(tmp_path) == ['epoch_3.pth', 'plain']


def test_atomic_backend_writes_through_a_rename(tmp_path, monkeypatch):
    from mmlt_hybrid.utils.checkpoints import ATOMIC_BACKEND
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend=ATOMIC_BACKEND))
    backend.put(b'\x00' * 10, str(tmp_path / 'sub' / 'iter_5.pth'))
    backend.put_text('abc', str(tmp_path / 'last_checkpoint'))
    assert (tmp_path / 'sub' / 'iter_5.pth').read_bytes() == b'\x00' * 10
    assert (tmp_path / 'last_checkpoint').read_text() == 'abc'

    def refuse(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', refuse)
    with pytest.raises(OSError, match='disk full'):
        backend.put(b'new', str(tmp_path / 'sub' / 'iter_5.pth'))
    assert (tmp_path / 'sub' / 'iter_5.pth').read_bytes() == b'\x00' * 10
    assert _names(tmp_path / 'sub') == ['iter_5.pth']


def test_checkpoint_hooks_get_the_atomic_backend(tmp_path):
    """Local CheckpointHooks without backend_args get it; others stay."""
    from mmlt_hybrid.utils.checkpoints import (
        ATOMIC_BACKEND,
        make_checkpoints_atomic,
    )
    plain = CheckpointHook(interval=1)
    explicit = CheckpointHook(interval=1, backend_args=dict(backend='local'))
    remote = CheckpointHook(interval=1, out_dir='s3://bucket/runs')

    class Runner:
        hooks = [plain, explicit, remote]
        work_dir = str(tmp_path)

    make_checkpoints_atomic(Runner())
    assert plain.backend_args == dict(backend=ATOMIC_BACKEND)
    assert explicit.backend_args == dict(backend='local')
    assert remote.backend_args is None


# The fault: the FAULT_NTH open-for-writing of a file whose name contains
# FAULT_MATCH writes half of the first chunk given to it, tells the test
# (FAULT_SIGNAL) and waits to be killed. Installed with sitecustomize, so it
# wraps whatever writes the file: mmengine's LocalBackend.put, the
# checkpoint hook's open() of last_checkpoint, or a temporary file.
_SITECUSTOMIZE = '''
import builtins
import os
import time

_open = builtins.open
_match = os.environ['FAULT_MATCH']
_nth = int(os.environ['FAULT_NTH'])
_opened = 0


class _HalfWriter:

    def __init__(self, file):
        self._file = file

    def write(self, data):
        self._file.write(data[:len(data) // 2])
        self._file.flush()
        os.fsync(self._file.fileno())
        with _open(os.environ['FAULT_SIGNAL'], 'w') as signal:
            signal.write(str(os.getpid()))
        time.sleep(600)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def __getattr__(self, name):
        return getattr(self._file, name)


def _faulty_open(file, mode='r', *args, **kwargs):
    global _opened
    handle = _open(file, mode, *args, **kwargs)
    if 'w' in mode and isinstance(file, (str, os.PathLike)) and \\
            _match in os.path.basename(os.fspath(file)):
        _opened += 1
        if _opened == _nth:
            return _HalfWriter(handle)
    return handle


builtins.open = _faulty_open
'''


def _kill_inside_write(work_dir, folder, tmp_path, match, nth):
    """Train 2 epochs; SIGKILL the process inside the chosen write."""
    inject = tmp_path / 'inject'
    inject.mkdir()
    (inject / 'sitecustomize.py').write_text(textwrap.dedent(_SITECUSTOMIZE))
    signal_file = tmp_path / 'inside_write'
    env = dict(
        os.environ,
        FAULT_MATCH=match,
        FAULT_NTH=str(nth),
        FAULT_SIGNAL=str(signal_file),
        PYTHONWARNINGS='ignore',
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            [str(inject)] +
            os.environ.get('PYTHONPATH', '').split(os.pathsep)).rstrip(
                os.pathsep))
    log = tmp_path / 'killed.log'
    with open(log, 'w') as out:
        process = subprocess.Popen([
            str(a)
            for a in python_tool('train.py', TINY_CONFIG, '--work-dir',
                                 work_dir, '--no-validate', '--cfg-options',
                                 *_options(folder), 'train_cfg.max_epochs=2')
        ],
                                   cwd=REPO_ROOT,
                                   env=env,
                                   stdout=out,
                                   stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while not signal_file.exists() and process.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        inside = signal_file.exists()
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert inside, f'the write was not reached:\n{log.read_text()[-3000:]}'
    assert signal_file.read_text() == str(process.pid)


@pytest.mark.parametrize('match, nth', [('epoch_2.pth', 1),
                                        ('last_checkpoint', 2)])
def test_kill_inside_a_checkpoint_write(match, nth, folder, tmp_path):
    """No truncated file under a final name; ``--resume`` then finishes.

    Killed while writing ``epoch_2.pth``, or while writing ``last_checkpoint``
    after ``epoch_2.pth`` (its second write), the work dir keeps
    ``epoch_1.pth`` as the latest checkpoint. (Before atomic writes,
    ``epoch_2.pth`` was left with half its bytes, or ``last_checkpoint``
    with half a path.)
    """
    work_dir = tmp_path / 'wd'
    _kill_inside_write(work_dir, folder, tmp_path, match, nth)

    checkpoints = sorted(work_dir.glob('epoch_*.pth'))
    expected = ['epoch_1.pth'] + (['epoch_2.pth'] if nth == 2 else [])
    assert [p.name for p in checkpoints] == expected
    for path in checkpoints:
        epoch = int(path.stem.split('_')[1])
        assert _load(path)['meta']['epoch'] == epoch
    assert _named_by_last_checkpoint(work_dir) == str(work_dir / 'epoch_1.pth')
    # What the killed process was writing lies under a hidden name.
    assert len(list(work_dir.glob('.*.tmp'))) == 1
    if nth == 2:
        return  # resuming is shown once, after the kill in epoch_2.pth

    result = _train(work_dir, folder, '--resume', max_epochs=2)
    assert 'resumed epoch: 1' in result.stdout
    assert _load(work_dir / 'epoch_2.pth')['meta']['epoch'] == 2
    assert _named_by_last_checkpoint(work_dir) == str(work_dir / 'epoch_2.pth')
    # The killed writer's temporary file went with the next write.
    assert not list(work_dir.glob('.*.tmp'))
