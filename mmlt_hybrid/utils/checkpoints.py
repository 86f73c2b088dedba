"""Checkpoints that are written whole, checked before loading, loaded fully.

- Atomic writes: :func:`make_checkpoints_atomic` makes a runner's
  ``CheckpointHook`` write every checkpoint and ``last_checkpoint`` to a
  temporary file in the same folder (flushed and fsynced) and rename it onto
  its name, so a process killed while saving leaves the previous files, never
  a truncated one under a final name.
- :func:`check_checkpoint` refuses a path that is not an intact checkpoint
  (a folder, a text file, an empty or cut-short checkpoint), naming it,
  before a runner tries to load it.
- :func:`find_resume_checkpoint` reads ``last_checkpoint`` as mmengine does,
  but a copied or moved work dir resumes from its own checkpoint, never
  silently from the folder it was copied from.
- :class:`StrictLoadHook` refuses a checkpoint whose weights do not fit the
  model (missing, unexpected or resized tensors); :class:`ResumeCheckHook`
  also refuses to resume one past the end of training.

Loading stays weights-only (see :mod:`mmlt_hybrid.compat`).
"""
import contextlib
import glob
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import IO, Iterator, List, Optional, Tuple

import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.hooks import checkpoint_hook as mmengine_checkpoint_hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

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


#: What a checkpoint argument must be, for the messages.
_EXPECTED = ('a checkpoint file written by tools/train.py or torch.save '
             '(e.g. <work_dir>/epoch_N.pth), in torch\'s zip format or its '
             'legacy pickle format')
#: How torch's legacy format starts: its magic number, pickled with one of
#: the pickle protocols (2 unless torch.save was given another).
_LEGACY_HEADS = tuple(
    pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=protocol)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1))


def _starts_as(head: bytes, start: bytes) -> bool:
    """Whether ``head`` begins with ``start``, or is a beginning of it (a
    file cut short within ``start``)."""
    return start.startswith(head[:len(start)])


def _in_folder(folder: str) -> str:
    """What a folder given as a checkpoint holds that could be meant."""
    record = osp.join(folder, 'last_checkpoint')
    if osp.isfile(record):
        with open(record, errors='replace') as f:
            named = f.read().strip()
        return (f'. It looks like a work dir: its last_checkpoint names '
                f'{named!r}. Pass that file, or resume the latest checkpoint '
                'of a work dir with a bare --resume and --work-dir '
                f'{folder!r}.')
    found = sorted(
        name for name in os.listdir(folder)
        if name.endswith(('.pth', '.pt',
                          '.ckpt')) and osp.isfile(osp.join(folder, name)))
    if found:
        shown = ', '.join(found[:5]) + (', ...' if len(found) > 5 else '')
        return f'. It holds {shown}: pass one of these files.'
    return ''


def _text_of(head: bytes) -> Optional[str]:
    """``head`` as text if it reads as printable UTF-8, else None."""
    for cut in range(4):  # the last character may be cut in the middle
        try:
            text = head[:len(head) - cut].decode('utf-8')
        except UnicodeDecodeError:
            continue
        if all(c.isprintable() or c in '\t\r\n' for c in text):
            return text
        return None
    return None


def _not_a_checkpoint(path: str, head: bytes, size: int) -> str:
    """Why a file that is neither of torch's formats is not a checkpoint."""
    text = _text_of(head)
    if text is None and head.startswith(b'\x80'):  # a pickle's PROTO
        return (f'a pickle file of {size} bytes that torch.save did not '
                "write (it does not begin with torch's magic number)")
    if text is None:
        shown = ' '.join(f'{b:02x}' for b in head[:8])
        return (f'a binary file of {size} bytes that begins with the bytes '
                f'{shown}, neither torch\'s zip format (50 4b 03 04) nor its '
                'legacy pickle format (its magic number pickled)')
    first = text.splitlines()[0].strip() if text.strip() else ''
    shown = first if len(first) <= 80 else first[:77] + '...'
    what = f'a text file of {size} bytes that begins with {shown!r}'
    if first and osp.isfile(first) and \
            osp.abspath(first) != osp.abspath(path):
        what += (f'; it names the file {first!r}, as mmengine\'s '
                 'last_checkpoint file names the latest checkpoint of a work '
                 'dir: pass that file instead')
    return what


def _unpickling_detail(error: BaseException) -> str:
    """The reason in an error of torch's weights-only loader, without the
    advice that comes with it (which is to load unsafely)."""
    message = str(error)
    marker = 'WeightsUnpickler error:'
    if marker in message:
        message = message.split(marker, 1)[1]
    message = message.strip().splitlines()[0] if message.strip() else ''
    return message.split('. ')[0].rstrip('.') or type(error).__name__


def check_checkpoint(path: str, what: str) -> None:
    """Refuse a path that is not an intact checkpoint file, naming it.

    A missing path, a folder (e.g. a work dir) and a file that is not a torch
    checkpoint (e.g. a work dir's ``last_checkpoint``, a text file) are
    refused saying what the path is and what was expected, as are empty and
    cut-short checkpoints. A zip-format file (torch's default) needs a
    readable zip directory, which a file cut short has lost, holding
    torch's ``data.pkl``; that check reads only the end of the file. A
    legacy-format file is loaded once, weights only.

    Args:
        path (str): The checkpoint. Remote paths (``scheme://``) are not
            checked.
        what (str): What the file is, for the message, e.g.
            ``'checkpoint (--resume)'``.

    Raises:
        FileNotFoundError: If nothing exists at ``path``.
        IsADirectoryError: If ``path`` is a folder.
        ValueError: If the file is not a torch checkpoint, or is damaged or
            truncated.
        pickle.UnpicklingError: If torch's weights-only loader refuses a
            legacy-format file.
    """
    if '://' in str(path):
        return
    expected = _EXPECTED + (_in_folder(path) if osp.isdir(path) else '')
    require_file(path, what, expected=expected)
    size = osp.getsize(path)
    if size == 0:
        problem = 'the file is empty'
    else:
        with open(path, 'rb') as f:
            head = f.read(512)
        is_zip = _starts_as(head, _ZIP_MAGIC)
        if not is_zip and not any(
                _starts_as(head, start) for start in _LEGACY_HEADS):
            raise ValueError(
                f'{what} {path!r} is not a torch checkpoint: it is '
                f'{_not_a_checkpoint(path, head, size)}. '
                f'Expected {_EXPECTED}.')
        try:
            if is_zip:
                with zipfile.ZipFile(path) as archive:
                    names = archive.namelist()
                if not any(name == 'data.pkl' or name.endswith('/data.pkl')
                           for name in names):
                    shown = ', '.join(
                        names[:3]) + (', ...' if len(names) > 3 else '')
                    raise ValueError(
                        f'{what} {path!r} is not a torch checkpoint: it is a '
                        f'zip archive of {len(names)} entries ({shown}) '
                        f'without torch\'s data.pkl. Expected {_EXPECTED}.')
            else:
                torch.load(path, map_location='cpu', weights_only=True)
            return
        except pickle.UnpicklingError as error:
            detail = _unpickling_detail(error)
            if not re.search(r'global|getattr', detail, re.IGNORECASE):
                problem = f'UnpicklingError: {detail}'  # garbled data
            else:
                raise pickle.UnpicklingError(
                    f'{what} {path!r} ({size} bytes, torch\'s legacy format) '
                    f'is refused by the weights-only loader: {detail}. It '
                    "holds objects other than weights and mmengine's "
                    'training state, which are never loaded. Expected '
                    f'{_EXPECTED}.') from None
        except (zipfile.BadZipFile, EOFError, RuntimeError, IndexError,
                OSError) as error:
            problem = f'{type(error).__name__}: {error}'
    raise ValueError(
        f'{what} {path!r} is damaged or truncated ({size} bytes; {problem}). '
        'It was probably cut short while being written, e.g. by a killed '
        'process. Pass an intact checkpoint instead (e.g. an earlier '
        'epoch_*.pth / iter_*.pth of the same work dir).')


class ResumeNote(str):
    """What :func:`find_resume_checkpoint` says, with how loudly to say it:
    ``warning`` is True when no checkpoint was found or the one used is not
    the one ``last_checkpoint`` names."""

    warning = False


def _note(message: str, warning: bool = False) -> ResumeNote:
    note = ResumeNote(message)
    note.warning = warning
    return note


def find_resume_checkpoint(
        work_dir: str,
        checkpoint_dir: Optional[str] = None
) -> Tuple[Optional[str], ResumeNote]:
    """The checkpoint a bare ``--resume`` continues from, and what to log.

    ``<work_dir>/last_checkpoint`` names the latest checkpoint (mmengine
    writes its absolute path). A work dir resumes from its own checkpoints:
    when that path lies outside the folder the run writes its checkpoints
    to (the work dir was copied or moved, so the record still points into
    the original folder) and the folder holds a file of the same name, that
    file is used, and the note is a warning naming both. When the folder
    lacks the file, nothing is resumed from the other folder: the error
    names both and how to continue from the other one on purpose.

    Args:
        work_dir (str): The run's work dir.
        checkpoint_dir (str, optional): Where the run writes its checkpoints
            when not the work dir (``default_hooks.checkpoint.out_dir``
            joined with the work dir's name, as mmengine's CheckpointHook
            does). Defaults to None (the work dir).

    Returns:
        tuple[str | None, ResumeNote]: The checkpoint, or None when the work
        dir has no ``last_checkpoint`` (training starts from scratch); and a
        message saying which it is (its ``warning`` attribute is True when
        it should be logged as a warning).

    Raises:
        FileNotFoundError: If ``last_checkpoint`` names a file in the
            checkpoint folder that does not exist, or a file outside it
            whose name the folder does not hold.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None, _note(
            f'Resume: no checkpoint found in {osp.abspath(work_dir)} (it has '
            'no last_checkpoint file); training starts from scratch.',
            warning=True)
    with open(record) as f:
        named = f.read().strip()
    folder = checkpoint_dir or work_dir
    if '://' in named or '://' in str(folder):
        return named, _note(f'Resume: resuming from {named} (named by '
                            f'{record}).')
    own = osp.join(folder, osp.basename(named))
    outside = bool(named) and osp.realpath(osp.dirname(
        osp.abspath(named))) != osp.realpath(folder)
    if outside and osp.isfile(own):
        return own, _note(
            f'Resume: resuming from {own}, the work dir\'s own file: '
            f'{record} names {named!r}, outside {folder} (the work dir was '
            'copied or moved). To continue from that file instead, pass '
            f'it: --resume {named}.',
            warning=True)
    if outside and osp.isfile(named):
        raise FileNotFoundError(
            f'{record} names {named!r} as the latest checkpoint, a file in '
            f'another folder, and {folder} has no {osp.basename(named)!r} '
            'of its own: a bare --resume continues a work dir from its own '
            'checkpoints, never silently from another run\'s. To train on '
            f'from that file, pass it: --resume {named}; to train from '
            f'scratch, remove {record}.')
    if not osp.isfile(named):
        where = (f'and {folder} has no file {osp.basename(named)!r} either'
                 if outside else 'in the folder the run writes its '
                 f'checkpoints to ({folder})')
        raise FileNotFoundError(
            f'{record} names {named!r} as the latest checkpoint, which '
            f'does not exist, {where}. Resume from a given checkpoint '
            'with --resume PATH, or remove last_checkpoint to train from '
            'scratch.')
    return named, _note(f'Resume: resuming from {named} (named by {record}).')


def checkpoint_misfit(model, checkpoint: dict) -> List[str]:
    """How the weights of a checkpoint do not fit a model, by kind.

    Compares the loaded ``state_dict`` (``module.`` prefixes removed, as
    mmengine's runner does; BatchNorm's ``num_batches_tracked`` may be
    missing) with the model's. A model tensor with no elements takes the
    checkpoint's shape when loaded (e.g. the ``class_counts`` buffer of a
    model built without counts, see
    :class:`~mmlt_hybrid.models.losses.ClassPriorMixin`), so its shape is
    not compared. The ``class_counts`` buffer of a part that follows the
    class-counts protocol (``needs_class_counts``) may be missing: such a
    part has its counts from the config or fills them from the training set
    (``ClassCountsHook``), e.g. ``LogitAdjustedLinearClsHead`` evaluated on
    a head trained with plain cross-entropy. Any other missing key is a
    misfit.

    Args:
        model (nn.Module): The model (a wrapper's ``module`` is used).
        checkpoint (dict): The loaded checkpoint, or a bare state dict.

    Returns:
        list[str]: One line per kind of mismatch (missing, unexpected, of
        another shape) naming up to 20 keys; empty when the weights fit.
    """
    model = model.module if is_model_wrapper(model) else model
    expected = model.state_dict()
    given = {
        re.sub(r'^module\.', '', key): value
        for key, value in checkpoint.get('state_dict', checkpoint).items()
    }
    counted = {
        f'{name}.class_counts' if name else 'class_counts'
        for name, module in model.named_modules()
        if hasattr(module, 'needs_class_counts')
    }
    missing = [
        key for key in expected if key not in given
        and not key.endswith('num_batches_tracked') and key not in counted
    ]
    unexpected = [key for key in given if key not in expected]
    resized = [
        f'{key}: {tuple(given[key].shape)} in the checkpoint, '
        f'{tuple(value.shape)} in the model'
        for key, value in expected.items()
        if key in given and tuple(getattr(given[key], 'shape',
                                          ())) != tuple(value.shape)
        and value.numel() > 0  # an empty buffer takes the given shape
    ]
    problems = []
    for title, keys in (('missing in the checkpoint', missing),
                        ('unexpected in the checkpoint',
                         unexpected), ('shapes differ', resized)):
        if not keys:
            continue
        more = len(keys) - _LISTED
        problems.append(f'{title} ({len(keys)}): ' +
                        ', '.join(keys[:_LISTED]) +
                        (f', ... ({more} more)' if more > 0 else ''))
    return problems


class StrictLoadHook(Hook):
    """Refuse a checkpoint that does not fit the model, listing the keys.

    mmengine's runner loads checkpoints with ``strict=False``: missing,
    unexpected and resized tensors are only logged and the model keeps its
    initial weights for them. Registered on a runner (before it loads), this
    hook compares the loaded weights with the model's
    (:func:`checkpoint_misfit`) and raises on any difference, before
    anything is loaded into the model or an optimizer.

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
        problems = checkpoint_misfit(runner.model, checkpoint)
        if problems:
            raise ValueError(
                f'checkpoint {self.source!r} does not fit the model built '
                'from the config; these weights would stay as initialised:\n' +
                '\n'.join(problems) + f'\n{self.advice}')


class ResumeCheckHook(StrictLoadHook):
    """Refuse a checkpoint that cannot be resumed, before it is loaded.

    Registered on a runner that resumes, this hook refuses, when the
    checkpoint has been read and before the model, the optimizer or the
    schedulers get anything from it:

    - a checkpoint whose weights do not fit the model (as
      :class:`StrictLoadHook`; mmengine would load the fitting weights and
      then fail in the optimizer with "loaded state dict contains a
      parameter group that doesn't match", or train with partly initial
      weights);
    - a checkpoint without the training state (``meta`` with ``epoch`` and
      ``iter``), e.g. released weights;
    - a checkpoint past the end of training (epoch above
      ``train_cfg.max_epochs``, or iteration above ``max_iters``), from
      which mmengine would train nothing and exit without a word. A
      checkpoint exactly at the end gets a warning: the run is complete.

    Args:
        source (str): The checkpoint, for the messages.
        what (str): How it was given, e.g. ``'--resume'``.
    """

    def __init__(self, source: str, what: str = '--resume') -> None:
        super().__init__(
            source, 'A run resumes with the model that wrote the '
            'checkpoint: check that the config (and --cfg-options) is the '
            'one it was trained with, or start from its weights without '
            'resuming (load_from, not --resume) to train another model.')
        self.what = what

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Raise ``ValueError`` if the checkpoint cannot be resumed."""
        super().after_load_checkpoint(runner, checkpoint)
        meta = checkpoint.get('meta')
        if not isinstance(meta, dict) or not all(
                isinstance(meta.get(key), int) for key in ('epoch', 'iter')):
            raise ValueError(
                f'checkpoint {self.source!r} ({self.what}) holds no training '
                'state (meta with epoch and iter), so it cannot be resumed; '
                'it holds weights only (e.g. a released model). To start '
                'from its weights set load_from to it without --resume.')
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            unit, done, end, key = ('epoch', meta['epoch'], loop.max_epochs,
                                    'max_epochs')
        elif isinstance(loop, IterBasedTrainLoop):
            unit, done, end, key = ('iteration', meta['iter'], loop.max_iters,
                                    'max_iters')
        else:
            return
        if done > end:
            raise ValueError(
                f'checkpoint {self.source!r} ({self.what}) is at {unit} '
                f'{done}, past train_cfg.{key}={end}: resuming it would '
                'train nothing and leave the checkpoint as it is. To train '
                f'on, set train_cfg.{key} above {done} (e.g. --cfg-options '
                f'train_cfg.{key}={2 * done}); to train from scratch for '
                f'{end} {unit}(s), leave out --resume and use another '
                '--work-dir.')
        if done == end:
            runner.logger.warning(
                f'Resume: checkpoint {self.source} is at {unit} {done}, '
                f'which is train_cfg.{key}={end}: training is complete and '
                'nothing is trained. To train on, set train_cfg.'
                f'{key} above {done}.')
