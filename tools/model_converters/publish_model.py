#!/usr/bin/env python
"""Publish a training checkpoint as a model zoo does: weights only, with the
first 8 hex digits of its sha256 in the file name.

Reads a checkpoint written by ``tools/train.py`` (mmengine's CheckpointHook:
``meta``, ``state_dict``, ``optimizer``, ``message_hub``,
``param_schedulers``, ...) with torch's weights-only loader and the
allowlist of :mod:`mmlt_hybrid.compat`, and writes a file that holds only

- ``state_dict``: every tensor as it is in the checkpoint (same keys, dtypes
  and values; for a run with EMAHook these are the EMA weights, which
  mmengine stores there and ``tools/test.py`` evaluates);
- ``meta``: the checkpoint's meta (epoch, iter, seed, the config text,
  ``dataset_meta``, mmengine's version, ...) entries that are plain Python
  values or tensors, plus ``mmpretrain_version``, ``mmlt_hybrid_version``
  and ``source`` (the input's file name).

Everything else (optimizer, message hub, schedulers, the EMA copy, the
generator states) is dropped, so ``torch.load(file, weights_only=True)``
reads the result with torch's own allowlist alone; that is checked before
anything is written. The file is serialized in memory (torch names the
records of its zip archive after the file, so a file written under a
temporary name would differ), which makes it byte-identical for the same
input, then written to a temporary file of the same folder and renamed.

As mmpretrain's ``publish_model.py``, ``OUT_FILE`` ``x/name.pth`` becomes
``x/name-<first 8 hex digits of the sha256>.pth`` (kept as it is when it
already ends with that suffix; no date is added, so that the name depends
on the content only). The final path and the full sha256 are printed, for
the model zoo's table. An existing file of that name with the same content
is left as it is; one with other content is never overwritten.

Example::

    python tools/model_converters/publish_model.py \\
        work_dirs/hybrid_sc_resnet32_cifar10lt/epoch_200.pth \\
        checkpoints/hybrid_sc_resnet32_cifar10lt.pth

prints ``checkpoints/hybrid_sc_resnet32_cifar10lt-1a2b3c4d.pth`` (say) and
its sha256; ``tools/test.py CONFIG PUBLISHED`` evaluates it as it does the
training checkpoint.
"""
import argparse
import hashlib
import io
import os.path as osp
import pickle
import sys
import warnings
import zipfile
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

with warnings.catch_warnings():  # mmcv-lite's ops warning on import
    warnings.simplefilter('ignore')
    import mmengine
    import mmpretrain

    import mmlt_hybrid  # noqa: F401  (registers the checkpoint allowlist)
    from mmlt_hybrid.utils import atomic_write, check_checkpoint

#: The suffix a published file must have.
SUFFIX = '.pth'
#: Hex digits of the sha256 put into the file name (as mmpretrain does).
HASH_DIGITS = 8
#: Python types the published file may hold (besides tensors and
#: containers of them): what torch's weights-only loader reads by itself.
PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes)


class PublishError(Exception):
    """A bad input or output; the message names it and what is allowed."""


def is_plain(value) -> bool:
    """Whether torch's weights-only loader reads ``value`` with no allowlist.

    Args:
        value: A value of a checkpoint.

    Returns:
        bool: True for tensors, :data:`PLAIN_TYPES` and lists, tuples and
        dicts (with plain keys) of such values; False for anything else
        (numpy arrays and scalars, sets, objects of other classes).
    """
    if isinstance(value, torch.Tensor):
        return type(value) is torch.Tensor or isinstance(
            value, torch.nn.Parameter)
    if type(value) in PLAIN_TYPES:
        return True
    if type(value) in (list, tuple):
        return all(is_plain(item) for item in value)
    if type(value) in (dict, OrderedDict):
        return all(
            is_plain(key) and is_plain(item) for key, item in value.items())
    return False


def load_checkpoint(path: str) -> dict:
    """Load a training checkpoint weights-only, as ``tools/test.py`` does.

    The file is first checked by :func:`mmlt_hybrid.utils.check_checkpoint`
    (missing, a folder, not a torch file, cut short), then loaded with
    ``torch.load(weights_only=True)`` and the allowlist that importing
    :mod:`mmlt_hybrid` registers (:mod:`mmlt_hybrid.compat`); a zip-format
    file is memory-mapped, so tensors are read only when used (the
    optimizer state never).

    Args:
        path (str): The checkpoint.

    Returns:
        dict: The checkpoint; its ``state_dict`` is a dict.

    Raises:
        PublishError: If the file is missing, not an intact checkpoint,
            refused by the weights-only loader, or holds no ``state_dict``.
    """
    what = 'input checkpoint (IN_FILE)'
    try:
        check_checkpoint(path, what)
        checkpoint = torch.load(
            path,
            map_location='cpu',
            weights_only=True,
            mmap=zipfile.is_zipfile(path))
    except (OSError, ValueError, RuntimeError, EOFError,
            pickle.UnpicklingError) as error:
        raise PublishError(str(error)) from None
    if not isinstance(checkpoint, dict) or not isinstance(
            checkpoint.get('state_dict'), dict):
        found = (f'a dict with the keys {sorted(map(str, checkpoint))[:10]}'
                 if isinstance(checkpoint, dict) else
                 f'a {type(checkpoint).__name__}')
        raise PublishError(
            f'{what} {path!r} is not a training checkpoint with a '
            f"'state_dict': it holds {found}. Expected a file written by "
            "tools/train.py (mmengine's CheckpointHook), e.g. "
            '<work_dir>/epoch_N.pth.')
    return checkpoint


def published_checkpoint(checkpoint: dict,
                         source: str) -> Tuple[dict, List[str]]:
    """The weights and the plain part of the meta of a checkpoint.

    Args:
        checkpoint (dict): A loaded training checkpoint.
        source (str): The input file, whose name goes into ``meta``.

    Returns:
        tuple[dict, list[str]]: The checkpoint to publish (``meta``,
        ``state_dict``) and the notes to print: what was dropped.

    Raises:
        PublishError: If a ``state_dict`` entry is neither a tensor nor a
            plain value (it could not be published without an allowlist).
    """
    state_dict = checkpoint['state_dict']
    odd = [key for key, value in state_dict.items() if not is_plain(value)]
    if odd or not all(isinstance(key, str) for key in state_dict):
        shown = odd[:5] or [k for k in state_dict if not isinstance(k, str)]
        raise PublishError(
            f"the input's state_dict holds entries that are neither tensors "
            f'nor plain Python values, e.g. {shown}, or keys that are not '
            'strings; a published file holds only tensors and plain values, '
            "which torch.load(weights_only=True) reads with torch's own "
            'allowlist.')
    notes = []
    meta = checkpoint.get('meta')
    meta = meta if isinstance(meta, dict) else {}
    kept: Dict[str, object] = OrderedDict()
    for key, value in meta.items():
        if isinstance(key, str) and is_plain(value):
            kept[key] = value
        else:
            notes.append(f'meta[{key!r}] dropped: a {type(value).__name__}, '
                         'not a plain Python value or tensor')
    kept.setdefault('mmengine_version', mmengine.__version__)
    kept['mmpretrain_version'] = mmpretrain.__version__
    kept['mmlt_hybrid_version'] = mmlt_hybrid.__version__
    kept['source'] = osp.basename(source)
    dropped = [key for key in checkpoint if key not in ('meta', 'state_dict')]
    if dropped:
        notes.append('dropped: ' + ', '.join(map(str, dropped)))
    if 'ema_state_dict' in checkpoint:
        notes.append('the input was written with EMAHook: its state_dict '
                     '(published) holds the EMA weights, as tools/test.py '
                     'evaluates them; the raw weights are not published')
    return OrderedDict(meta=kept, state_dict=state_dict), notes


def _load_with_torch_allowlist_only(data: bytes) -> dict:
    """``torch.load(weights_only=True)`` of ``data`` with the globals that
    mmlt_hybrid and others added to torch's allowlist removed meanwhile."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        return torch.load(
            io.BytesIO(data), map_location='cpu', weights_only=True)
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def serialize(checkpoint: dict) -> bytes:
    """The bytes of ``torch.save(checkpoint)``, the same for the same input.

    Args:
        checkpoint (dict): What to publish.

    Returns:
        bytes: torch's zip format; its records are named ``archive/...``
        whatever the final file name.

    Raises:
        PublishError: If the weights-only loader cannot read the bytes
            back with torch's own allowlist.
    """
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    try:
        _load_with_torch_allowlist_only(data)
    except pickle.UnpicklingError as error:  # is_plain should prevent it
        raise PublishError('the published checkpoint would need an '
                           f'allowlist to be loaded: {error}') from None
    return data


def check_out_file(out_file: str) -> None:
    """Refuse an ``OUT_FILE`` without the ``.pth`` suffix or a folder.

    Args:
        out_file (str): The ``OUT_FILE`` argument.

    Raises:
        PublishError: If it does not end with ``.pth``, has no name before
            it, or its folder does not exist.
    """
    name = osp.basename(out_file)
    if not name.endswith(SUFFIX) or name == SUFFIX:
        raise PublishError(
            f'OUT_FILE {out_file!r} must be a file name ending with '
            f"{SUFFIX!r} (e.g. checkpoints/<config name>{SUFFIX}); the "
            f'published file is named <name>-<sha256[:{HASH_DIGITS}]>'
            f'{SUFFIX}.')
    folder = osp.dirname(out_file) or '.'
    if not osp.isdir(folder):
        raise PublishError(
            f'the folder of OUT_FILE {out_file!r}, {folder!r}, does not '
            'exist (or is not a folder); create it first.')


def final_path(out_file: str, sha256: str) -> str:
    """``x/name.pth`` as ``x/name-<sha256[:8]>.pth``.

    Args:
        out_file (str): ``OUT_FILE``, ending with ``.pth``.
        sha256 (str): The hex sha256 of the content.

    Returns:
        str: The path with the hash suffix; ``out_file`` itself when it ends
        with ``-<sha256[:8]>.pth`` already.
    """
    stem = out_file[:-len(SUFFIX)]
    tag = '-' + sha256[:HASH_DIGITS]
    return out_file if stem.endswith(tag) else stem + tag + SUFFIX


def write_new(path: str, data: bytes, sha256: str) -> bool:
    """Write ``data`` to ``path`` atomically unless it is there already.

    Args:
        path (str): The final file.
        data (bytes): Its content.
        sha256 (str): The hex sha256 of ``data``, for the message.

    Returns:
        bool: True if written, False if ``path`` held ``data`` already.

    Raises:
        PublishError: If ``path`` exists with other content, or is not a
            regular file, or the write fails (``path`` is then untouched).
    """
    if osp.lexists(path):
        if not osp.isfile(path):
            raise PublishError(
                f'{path!r} exists and is not a regular file; the published '
                'checkpoint is not written over it. Remove it or choose '
                'another OUT_FILE.')
        with open(path, 'rb') as f:
            old = f.read()
        if old == data:
            return False
        raise PublishError(
            f'{path!r} exists with other content (sha256 '
            f'{hashlib.sha256(old).hexdigest()}, this checkpoint\'s is '
            f'{sha256}); it is never overwritten. Remove it or choose '
            'another OUT_FILE.')
    try:
        with atomic_write(path, 'wb') as f:
            f.write(data)
    except OSError as error:
        raise PublishError(
            f'writing {path!r} failed ({type(error).__name__}: {error}); '
            'nothing was written (the temporary file is removed).') from None
    return True


def publish(in_file: str, out_file: str) -> Tuple[str, str, List[str]]:
    """Publish ``in_file`` as ``out_file`` with its hash (see the module).

    Args:
        in_file (str): A training checkpoint.
        out_file (str): ``x/name.pth``.

    Returns:
        tuple[str, str, list[str]]: The final path, the full hex sha256 of
        its content and notes (what was dropped, whether it existed).

    Raises:
        PublishError: On a bad input or output; nothing is written then.
    """
    check_out_file(out_file)
    checkpoint = load_checkpoint(in_file)
    published, notes = published_checkpoint(checkpoint, in_file)
    data = serialize(published)
    sha256 = hashlib.sha256(data).hexdigest()
    path = final_path(out_file, sha256)
    if not write_new(path, data, sha256):
        notes.append(f'{path} exists with this content already; left as it '
                     'is')
    state_dict = published['state_dict']
    dtypes = sorted({
        str(v.dtype)
        for v in state_dict.values() if isinstance(v, torch.Tensor)
    })
    notes.insert(
        0, f'state_dict: {len(state_dict)} entries ({", ".join(dtypes)}); '
        f'{len(data)} bytes (input: {osp.getsize(in_file)} bytes)')
    return path, sha256, notes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The parsed command line (``argv``, default ``sys.argv[1:]``).

    Args:
        argv (list[str], optional): The arguments.

    Returns:
        argparse.Namespace: With ``in_file`` and ``out_file``.
    """
    parser = argparse.ArgumentParser(
        description='Process a checkpoint to be published: keep the weights '
        'and a small meta, name the file after its sha256.')
    parser.add_argument(
        'in_file', help='input checkpoint, written by tools/train.py')
    parser.add_argument(
        'out_file',
        help='output file name, ending with .pth; the file written is '
        '<name>-<first 8 hex digits of its sha256>.pth')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    """Publish as the command line says; exit 1 with a message on errors.

    Args:
        argv (list[str], optional): The arguments.

    Returns:
        str: The published file.
    """
    args = parse_args(argv)
    try:
        path, sha256, notes = publish(args.in_file, args.out_file)
    except PublishError as error:
        sys.exit(f'error: {error}')
    for note in notes:
        print(note)
    print(f'Published {args.in_file} as {path}')
    print(f'sha256: {sha256}')
    return path


if __name__ == '__main__':
    main()
