"""tools/model_converters/publish_model.py: a training checkpoint published
as a model zoo's weights-only file named after its sha256.

One tiny epoch of the stock ResNet-18 config (tests/configs/
tiny_resnet18_cifar10.py on the generated 10-class folder) is trained with
tools/train.py; its ``epoch_1.pth`` is published, and the published file is
compared with it: the hash computed here with hashlib
(``conftest.sha256_of``), the tensors with ``torch.equal``, and the accuracy
``tools/test.py`` reports for each.
"""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sha256_of
from tool_runner import (
    TINY_CONFIG,
    load_tool,
    python_tool,
    run,
    tiny_cfg_options,
)

import mmlt_hybrid  # noqa: F401  (safe globals to load the training file)

PUBLISH = 'model_converters/publish_model.py'
#: What a training checkpoint holds besides the weights and meta.
TRAINING_STATE = ('optimizer', 'message_hub', 'param_schedulers')


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """tools/test.py exports LOCAL_RANK; undo that after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


@pytest.fixture(scope='module')
def trained(tiny_folder, tmp_path_factory):
    """``epoch_1.pth`` of one tiny epoch (64 images, 4 steps, no
    validation) and the ``--cfg-options`` it was trained with."""
    work_dir = tmp_path_factory.mktemp('publish') / 'train'
    options = tiny_cfg_options(
        tiny_folder,
        train_dataloader__dataset__indices=64,
        train_cfg__max_epochs=1,
        train_cfg__val_interval=2)
    run(
        python_tool('train.py', TINY_CONFIG, '--work-dir', work_dir,
                    '--cfg-options', *options))
    return dict(checkpoint=work_dir / 'epoch_1.pth', options=options)


def _publish(in_file, out_file, check=True):
    return run(python_tool(PUBLISH, in_file, out_file), check=check)


@pytest.fixture(scope='module')
def published(trained, tmp_path_factory):
    """``epoch_1.pth`` published as ``<folder>/tiny.pth``: the tool's
    result and the folder."""
    folder = tmp_path_factory.mktemp('zoo')
    result = _publish(trained['checkpoint'], folder / 'tiny.pth')
    return dict(result=result, folder=folder)


@pytest.fixture
def torch_allowlist_only():
    """Remove every global added to torch's weights-only allowlist (by
    mmlt_hybrid.compat and others) during the test."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def _files(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones too) and its content."""
    return {
        path.relative_to(folder): path.read_bytes()
        for path in folder.rglob('*') if path.is_file()
    }


def test_file_is_named_after_its_sha256(published):
    """One file ``tiny-<sha256[:8]>.pth``; the printed path and sha256 are
    those of its bytes."""
    folder = published['folder']
    files = list(folder.iterdir())
    assert len(files) == 1  # no temporary file left
    path = files[0]
    sha256 = sha256_of(path)
    assert path.name == f'tiny-{sha256[:8]}.pth'
    stdout = published['result'].stdout
    assert re.search(r'^sha256: ([0-9a-f]{64})$', stdout,
                     re.MULTILINE).group(1) == sha256
    assert f'as {path}\n' in stdout


def test_published_file_holds_weights_and_plain_meta_only(
        trained, published, torch_allowlist_only):
    """torch's own allowlist loads it; it holds the training file's tensors
    (equal, same dtype) and its meta, no training state; it is about the
    size of the weights."""
    path = next(published['folder'].iterdir())
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    torch.serialization.add_safe_globals(mmlt_hybrid.compat.SAFE_GLOBALS)
    original = torch.load(
        trained['checkpoint'], map_location='cpu', weights_only=True)

    assert set(checkpoint) == {'meta', 'state_dict'}
    assert set(TRAINING_STATE) <= set(original)  # all dropped
    weights = checkpoint['state_dict']
    original_weights = original['state_dict']
    assert list(weights) == list(original_weights)
    for key, tensor in original_weights.items():
        assert weights[key].dtype == tensor.dtype, key
        assert torch.equal(weights[key], tensor), key
    assert {t.dtype for t in weights.values()} == {torch.float32, torch.int64}

    meta, original_meta = checkpoint['meta'], original['meta']
    assert (meta['epoch'], meta['iter']) == (1, 4)  # 64 images, batch 16
    assert set(original_meta) >= {
        'epoch', 'iter', 'seed', 'cfg', 'dataset_meta', 'mmengine_version'
    }
    # all of it kept (plain values only here), three entries added
    assert {key: meta[key] for key in original_meta} == original_meta
    assert set(meta) - set(original_meta) == {
        'mmpretrain_version', 'mmlt_hybrid_version', 'source'
    }
    assert meta['dataset_meta']['classes'] == tuple(f'class_{c:03d}'
                                                    for c in range(10))
    assert meta['source'] == 'epoch_1.pth'
    assert meta['mmlt_hybrid_version'] == mmlt_hybrid.__version__
    assert meta['mmpretrain_version']

    tensor_bytes = sum(t.numel() * t.element_size()
                       for t in original_weights.values())
    size = path.stat().st_size
    original_size = trained['checkpoint'].stat().st_size
    assert tensor_bytes <= size < tensor_bytes + 64 * 1024
    assert size < 0.6 * original_size  # SGD's momentum alone is 1x weights


def test_meta_that_needs_an_allowlist_is_dropped(trained, tmp_path,
                                                 torch_allowlist_only):
    """A numpy value in meta (loadable with mmlt_hybrid's allowlist only)
    and an EMA copy of the weights are left out, with a note."""
    torch.serialization.add_safe_globals(mmlt_hybrid.compat.SAFE_GLOBALS)
    checkpoint = torch.load(
        trained['checkpoint'], map_location='cpu', weights_only=True)
    checkpoint['meta']['eta'] = np.float64(1.5)
    checkpoint['ema_state_dict'] = {
        'module.' + key: value
        for key, value in checkpoint['state_dict'].items()
    }
    source = tmp_path / 'with_numpy.pth'
    torch.save(checkpoint, source)
    folder = tmp_path / 'zoo'
    folder.mkdir()

    result = _publish(source, folder / 'x.pth')
    assert "meta['eta'] dropped: a float64" in result.stdout
    assert 'ema_state_dict' in result.stdout
    torch.serialization.clear_safe_globals()
    published = torch.load(
        next(folder.iterdir()), map_location='cpu', weights_only=True)
    assert set(published) == {'meta', 'state_dict'}
    assert 'eta' not in published['meta']
    assert published['meta']['source'] == 'with_numpy.pth'


def test_test_tool_gives_the_same_metrics(trained, published, tmp_path):
    """tools/test.py reports the same accuracy for both files.

    tools/test.py loads strictly (StrictLoadHook refuses missing, unexpected
    or resized weights), so every published tensor, equal to the training
    file's (above), is the one evaluated.
    """
    path = next(published['folder'].iterdir())
    metrics = {}
    for name, checkpoint in (('original', trained['checkpoint']), ('published',
                                                                   path)):
        out = tmp_path / f'{name}.json'
        run(
            python_tool('test.py', TINY_CONFIG, checkpoint, '--work-dir',
                        tmp_path / name, '--out', out, '--out-item', 'metrics',
                        '--cfg-options', *trained['options']))
        metrics[name] = json.loads(out.read_text())
    assert set(metrics['original']) == {'accuracy/top1'}
    assert metrics['published'] == metrics['original']


def test_publishing_again_gives_the_same_file(trained, published, tmp_path):
    """Another folder gets the same name and bytes; publishing into the same
    folder again leaves the file as it is and exits 0."""
    first = next(published['folder'].iterdir())
    before = _files(published['folder'])
    again = _publish(trained['checkpoint'], published['folder'] / 'tiny.pth')
    assert 'exists with this content already' in again.stdout
    assert _files(published['folder']) == before

    _publish(trained['checkpoint'], tmp_path / 'tiny.pth')
    assert _files(tmp_path) == {Path(first.name): first.read_bytes()}


def test_name_with_its_hash_is_kept(trained, published, tmp_path):
    """An OUT_FILE that ends with the content's hash gets no second one."""
    name = next(published['folder'].iterdir()).name
    result = _publish(trained['checkpoint'], tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert f'as {tmp_path / name}\n' in result.stdout


def _refused(in_file, out_file, folder: Path, *expected: str) -> None:
    """The tool exits non-zero with ``expected`` in its message and writes
    nothing into ``folder``."""
    before = _files(folder)
    result = _publish(in_file, out_file, check=False)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
    assert _files(folder) == before


def test_refuses_an_input_that_is_no_training_checkpoint(tmp_path):
    """A missing file; a torch file without a ``state_dict``."""
    out = tmp_path / 'out.pth'
    missing = tmp_path / 'missing.pth'
    _refused(missing, out, tmp_path, 'error:', repr(str(missing)), 'not found')
    bare = tmp_path / 'bare.pth'
    torch.save({'weight': torch.zeros(2)}, bare)
    _refused(bare, out, tmp_path, repr(str(bare)), "'state_dict'",
             "keys ['weight']", 'tools/train.py')


def test_refuses_an_out_file_without_pth(trained, tmp_path):
    """OUT_FILE must end with ``.pth``; its folder must exist."""
    for out in (tmp_path / 'model.pt', tmp_path / 'model'):
        _refused(trained['checkpoint'], out, tmp_path, repr(str(out)),
                 "ending with '.pth'")
    out = tmp_path / 'absent' / 'model.pth'
    _refused(trained['checkpoint'], out, tmp_path, repr(str(out)),
             'does not exist')


def test_never_overwrites_other_content(trained, published, tmp_path):
    """A file of the final name with other content stays as it is."""
    name = next(published['folder'].iterdir()).name
    (tmp_path / name).write_bytes(b'other weights')
    _refused(trained['checkpoint'], tmp_path / 'tiny.pth', tmp_path,
             repr(str(tmp_path / name)), 'exists with other content',
             'never overwritten')
    assert os.listdir(tmp_path) == [name]


def test_failed_write_leaves_nothing(trained, tmp_path, monkeypatch):
    """A write that fails before the rename (here fsync, after the data went
    to the temporary file) leaves no file, temporary or final, and says
    so."""
    tool = load_tool(PUBLISH)

    def fail(descriptor):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', fail)
    with pytest.raises(tool.PublishError, match='nothing was written'):
        tool.publish(str(trained['checkpoint']), str(tmp_path / 'tiny.pth'))
    assert os.listdir(tmp_path) == []
