"""Checkpoints that are written whole, checked before loading, loaded fully.

- Atomic writes: :func:`make_checkpoints_atomic` makes a runner's
  ``CheckpointHook`` write every checkpoint and ``last_checkpoint`` to a
  temporary file in the same folder (flushed and fsynced) and rename it onto
  its name, so a process killed while saving leaves the previous files, never
  a truncated one under a final name.
- :func:`check_checkpoint` refuses an empty or cut-short checkpoint, naming
  it, before a runner tries to load it.
- :func:`find_resume_checkpoint` reads ``last_checkpoint`` as mmengine does,
  and also finds the checkpoint of a work dir that was moved.
- :class:`StrictLoadHook` refuses a checkpoint whose weights do not fit the
  model (missing, unexpected or resized tensors).

Loading stays weights-only (see :mod:`mmlt_hybrid.compat`).
"""
import contextlib
import glob
import os
import os.path as osp
import re
import zipfile
from typing import IO, Iterator, Optional, Tuple

import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.hooks import checkpoint_hook as mmengine_checkpoint_hook
from mmengine.model import is_model_wrapper

from .config_overrides import require_file

#: Name of :class:`AtomicLocalBackend` in mmengine's file backends.
ATOMIC_BACKEND = 'atomic_local'
_ZIP_MAGIC = b'PK\x03\x04'  # torch's default format since 1.6 is a zip file
_LISTED = 20  # keys listed per kind of mismatch


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb', **open_kwargs) -> Iterator[IO]:
    """Open a file whose content replaces ``path`` only once it is complete.

    The data goes to ``.<name>.<pid>.tmp`` in the same folder; when the
    ``with`` block ends without an error it is flushed, fsynced and renamed
    onto ``path`` (``os.replace``, atomic on POSIX and Windows). On an error
    the temporary file is removed and ``path`` is untouched. Temporary files
    of the same name left by a killed writer are removed first.

    Args:
        path (str): The final file name.
        mode (str): A writing mode of :func:`open`. Defaults to ``'wb'``.
        **open_kwargs: Passed on to :func:`open` (e.g. ``encoding``).

    Yields:
        IO: The open temporary file.
    """
    folder, name = osp.split(osp.abspath(path))
    for stale in glob.glob(
            osp.join(glob.escape(folder), f'.{glob.escape(name)}.*.tmp')):
        with contextlib.suppress(OSError):
            os.remove(stale)
    temporary = osp.join(folder, f'.{name}.{os.getpid()}.tmp')
    try:
        with open(temporary, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    if hasattr(os, 'O_DIRECTORY'):  # make the rename itself durable
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _open_atomically(file, mode: str = 'r', **kwargs):
    """:func:`open`, through :func:`atomic_write` for writing."""
    if 'w' in mode:
        return atomic_write(file, mode, **kwargs)
    return open(file, mode, **kwargs)


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing with :func:`atomic_write`.

    Selected with ``backend_args=dict(backend='atomic_local')``.
    """

    def put(self, obj: bytes, filepath) -> None:
        """Write bytes to ``filepath`` atomically, creating its folder."""
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        with atomic_write(filepath, 'wb') as f:
            f.write(obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically, creating its folder."""
        os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
        with atomic_write(filepath, 'w', encoding=encoding) as f:
            f.write(obj)


def make_checkpoints_atomic(runner) -> None:
    """Make the runner's checkpoint hooks write whole files or nothing.

    Every :class:`~mmengine.hooks.CheckpointHook` of ``runner.hooks`` that
    writes to a local folder and was given neither ``backend_args`` nor
    ``file_client_args`` gets ``backend_args=dict(backend='atomic_local')``
    (checkpoints, including ``best_*`` ones, are saved through it); hooks
    with explicit backend arguments are left as configured. mmengine 0.10.7
    writes ``last_checkpoint`` with the builtin :func:`open` of
    ``mmengine.hooks.checkpoint_hook``; that name is bound to an atomic
    writer in that module. Call before ``runner.train()``.

    Args:
        runner (Runner): A built runner.
    """
    mmengine_checkpoint_hook.open = _open_atomically
    for hook in runner.hooks:
        if (isinstance(hook, CheckpointHook) and hook.backend_args is None
                and hook.file_client_args is None
                and '://' not in str(hook.out_dir or runner.work_dir)):
            hook.backend_args = dict(backend=ATOMIC_BACKEND)


def check_checkpoint(path: str, what: str) -> None:
    """Refuse a missing, empty or cut-short checkpoint file, naming it.

    A zip-format file (torch's default) needs a readable zip directory, which
    a file cut short has lost; that check reads only the end of the file. A
    legacy-format file is loaded once, weights only.

    Args:
        path (str): The checkpoint. Remote paths (``scheme://``) are not
            checked.
        what (str): What the file is, for the message, e.g.
            ``'checkpoint (--resume)'``.

    Raises:
        FileNotFoundError: If ``path`` is not an existing file.
        ValueError: If the file is damaged or truncated.
    """
    require_file(path, what)
    if '://' in str(path):
        return
    size = osp.getsize(path)
    if size == 0:
        problem = 'the file is empty'
    else:
        with open(path, 'rb') as f:
            head = f.read(len(_ZIP_MAGIC))
        try:
            if _ZIP_MAGIC.startswith(head):
                zipfile.ZipFile(path).close()
            else:
                torch.load(path, map_location='cpu', weights_only=True)
            return
        except (zipfile.BadZipFile, EOFError, RuntimeError, IndexError,
                OSError) as error:
            problem = f'{type(error).__name__}: {error}'
    raise ValueError(
        f'{what} {path!r} is damaged or truncated ({size} bytes; {problem}). '
        'It was probably cut short while being written, e.g. by a killed '
        'process. Pass an intact checkpoint instead (e.g. an earlier '
        'epoch_*.pth / iter_*.pth of the same work dir).')


def find_resume_checkpoint(work_dir: str) -> Tuple[Optional[str], str]:
    """The checkpoint a bare ``--resume`` continues from, and what to log.

    ``<work_dir>/last_checkpoint`` names the latest checkpoint (mmengine
    writes its absolute path). If that path does not exist but the work dir
    holds a file of the same name, the work dir was moved and that file is
    used.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        tuple[str | None, str]: The checkpoint, or None when the work dir has
        no ``last_checkpoint`` (training starts from scratch); and a message
        saying which it is.

    Raises:
        FileNotFoundError: If ``last_checkpoint`` names a file that exists
            neither where it says nor in the work dir.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None, (f'Resume: no checkpoint found in '
                      f'{osp.abspath(work_dir)} (it has no last_checkpoint '
                      'file); training starts from scratch.')
    with open(record) as f:
        named = f.read().strip()
    moved = osp.join(work_dir, osp.basename(named))
    if '://' in named or osp.isfile(named):
        found = named
    elif named and osp.isfile(moved):
        found = moved
    else:
        raise FileNotFoundError(
            f'{record} names {named!r} as the latest checkpoint, which '
            f'does not exist, and {work_dir} has no file '
            f'{osp.basename(named)!r} either. Resume from a given checkpoint '
            'with --resume PATH, or remove last_checkpoint to train from '
            'scratch.')
    return found, f'Resume: resuming from {found} (named by {record}).'


class StrictLoadHook(Hook):
    """Refuse a checkpoint that does not fit the model, listing the keys.

    mmengine's runner loads checkpoints with ``strict=False``: missing,
    unexpected and resized tensors are only logged and the model keeps its
    initial weights for them. Registered on a runner (before it loads), this
    hook compares the loaded ``state_dict`` (``module.`` prefixes removed, as
    the runner does; BatchNorm's ``num_batches_tracked`` may be missing)
    with the model's and raises on any difference. A model tensor with no
    elements takes the checkpoint's shape when loaded (e.g. the
    ``class_counts`` buffer of a model built without counts, see
    :class:`~mmlt_hybrid.models.losses.ClassPriorMixin`), so its shape is
    not compared.

    Args:
        source (str): The checkpoint, for the message.
        advice (str): The last sentence of the message: what to do.
    """

    priority = 'VERY_HIGH'  # before EMAHook copies the weights

    def __init__(self, source: str, advice: str) -> None:
        self.source = source
        self.advice = advice

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Raise ``ValueError`` if the checkpoint's weights do not fit."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        expected = model.state_dict()
        given = {
            re.sub(r'^module\.', '', key): value
            for key, value in checkpoint.get('state_dict', checkpoint).items()
        }
        missing = [
            key for key in expected
            if key not in given and not key.endswith('num_batches_tracked')
        ]
        unexpected = [key for key in given if key not in expected]
        resized = [
            f'{key}: {tuple(given[key].shape)} in the checkpoint, '
            f'{tuple(value.shape)} in the model'
            for key, value in expected.items() if key in given
            and tuple(getattr(given[key], 'shape', ())) != tuple(value.shape)
            and value.numel() > 0  # an empty buffer takes the given shape
        ]
        problems = []
        for title, keys in (('missing in the checkpoint', missing),
                            ('unexpected in the checkpoint', unexpected),
                            ('shapes differ', resized)):
            if not keys:
                continue
            more = len(keys) - _LISTED
            problems.append(f'{title} ({len(keys)}): ' +
                            ', '.join(keys[:_LISTED]) +
                            (f', ... ({more} more)' if more > 0 else ''))
        if problems:
            raise ValueError(
                f'checkpoint {self.source!r} does not fit the model built '
                'from the config; these weights would stay as initialised:\n'
                + '\n'.join(problems) + f'\n{self.advice}')
