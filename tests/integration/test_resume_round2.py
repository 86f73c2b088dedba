"""Nothing silent, round two: resume lookup, exact resume of stock configs,
a post-hoc head on a cross-entropy checkpoint.

All runs are tools/train.py / tools/test.py called in-process on the stock
mmpretrain ResNet-18 CIFAR-10 config (tests/configs/tiny_resnet18_cifar10.py,
DefaultSampler, per-sample RandomCrop + RandomFlip from numpy's global
generator) shrunk to the generated 10-class folder.

1. A copied or moved work dir resumes (bare ``--resume``) from its own
   checkpoint, with a warning that ``last_checkpoint`` pointed elsewhere;
   a record pointing into another folder whose file the work dir lacks is
   refused naming both (it used to train on from the other folder's file).
2. A resumed run equals the uninterrupted one bit for bit with
   ``num_workers=0`` (numpy's global generator travels in the checkpoint,
   ``GlobalRngStateHook``), with one non-persistent worker, and with
   ``randomness.seed=None`` (the run keeps its checkpoint's seed).
3. ``tools/test.py`` evaluates a plain cross-entropy checkpoint with
   ``LogitAdjustedLinearClsHead`` (the head's ``class_counts`` may be
   missing); any other missing key is still refused.
"""
import re
import shutil

import pytest
import torch
from tool_runner import TINY_CONFIG, load_tool, scalars, tiny_cfg_options

import mmlt_hybrid  # noqa: F401  (safe globals for torch.load below)
from mmlt_hybrid.utils import check_checkpoint, find_resume_checkpoint


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """The tools' parse_args export LOCAL_RANK; undo that after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _train(work_dir, folder, *args, **options):
    """tools/train.py in-process; ``options`` as in tiny_cfg_options."""
    load_tool('train.py').main([
        str(TINY_CONFIG), '--work-dir',
        str(work_dir), *args, '--cfg-options',
        *tiny_cfg_options(folder, **options)
    ])


@pytest.fixture(scope='module')
def trained(tiny_folder, tmp_path_factory):
    """One epoch of the stock config (LinearClsHead, CrossEntropyLoss)."""
    work_dir = tmp_path_factory.mktemp('round2') / 'trained'
    _train(
        work_dir,
        tiny_folder,
        '--no-validate',
        train_cfg__max_epochs=1,
        train_dataloader__num_workers=0)
    assert (work_dir / 'epoch_1.pth').is_file()
    return work_dir


# ------------------------------------------------- 1. resume lookup


def _record(work_dir):
    return (work_dir / 'last_checkpoint').read_text().strip()


@pytest.mark.parametrize('how', ['copied', 'moved', 'elsewhere'])
def test_lookup_prefers_the_work_dirs_own_checkpoint(tmp_path, how):
    """``last_checkpoint`` points outside; the work dir holds the name."""
    original, work_dir = tmp_path / 'original', tmp_path / 'work'
    original.mkdir()
    (original / 'epoch_3.pth').write_bytes(b'original')
    (original / 'last_checkpoint').write_text(str(original / 'epoch_3.pth'))
    shutil.copytree(original, work_dir)
    if how == 'moved':
        shutil.rmtree(original)
    elif how == 'elsewhere':  # a record into some other run's folder
        other = tmp_path / 'other_run'
        other.mkdir()
        (other / 'epoch_3.pth').write_bytes(b'other')
        (work_dir / 'last_checkpoint').write_text(str(other / 'epoch_3.pth'))
    named = _record(work_dir)
    found, note = find_resume_checkpoint(str(work_dir))
    assert found == str(work_dir / 'epoch_3.pth')
    assert note.warning
    assert named in note and found in note and '--resume' in note
    # Checkpoints written to default_hooks.checkpoint.out_dir: that folder
    # is the run's own.
    out_dir = tmp_path / 'out' / 'work'
    shutil.copytree(work_dir, out_dir)
    found, note = find_resume_checkpoint(str(work_dir), str(out_dir))
    assert found == str(out_dir / 'epoch_3.pth') and note.warning


def test_lookup_of_the_own_record_is_quiet(tmp_path):
    (tmp_path / 'epoch_1.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    found, note = find_resume_checkpoint(str(tmp_path))
    assert found == str(tmp_path / 'epoch_1.pth') and not note.warning


def test_copied_work_dir_resumes_its_own_checkpoint(trained, tiny_folder,
                                                    tmp_path, capsys):
    """``cp -r WORK_DIR COPY`` then a bare --resume in COPY: COPY's file is
    loaded and a warning names both (it was WORK_DIR's, at INFO)."""
    copy = tmp_path / 'copy'
    shutil.copytree(trained, copy)
    assert _record(copy) == str(trained / 'epoch_1.pth')
    capsys.readouterr()
    # max_epochs=1: the checkpoint is at the end; loaded, nothing trained.
    _train(
        copy,
        tiny_folder,
        '--resume',
        '--no-validate',
        train_cfg__max_epochs=1)
    out = capsys.readouterr().out
    assert f'Load checkpoint from {copy / "epoch_1.pth"}' in out, out[-3000:]
    assert f'Load checkpoint from {trained}' not in out
    assert re.search(
        rf'WARNING - Resume: resuming from '
        rf'{re.escape(str(copy / "epoch_1.pth"))}, the work dir\'s own '
        rf'file: .*last_checkpoint names '
        rf'{re.escape(repr(str(trained / "epoch_1.pth")))}, outside '
        rf'{re.escape(str(copy))} ', out), out[-3000:]


def test_record_into_another_folder_without_own_file_is_refused(
        trained, tiny_folder, tmp_path):
    """The work dir lacks the file the record names in another folder:
    refused before anything is built, naming both."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(trained / 'epoch_1.pth'))
    with pytest.raises(FileNotFoundError) as error:
        _train(
            work_dir,
            tiny_folder,
            '--resume',
            '--no-validate',
            train_cfg__max_epochs=2)
    message = str(error.value)
    assert repr(str(trained / 'epoch_1.pth')) in message
    assert f"{work_dir} has no 'epoch_1.pth'" in message
    assert f'--resume {trained / "epoch_1.pth"}' in message
    assert not list(work_dir.glob('*.pth'))
    assert not (trained / 'epoch_2.pth').exists()


# ------------------------------------------------- 2. exact resume

CASES = {
    'no_workers':
    dict(
        train_dataloader__num_workers=0,
        train_dataloader__persistent_workers=False),
    'one_worker':
    dict(
        train_dataloader__num_workers=1,
        train_dataloader__persistent_workers=False),
    'seed_none':
    dict(
        train_dataloader__num_workers=0,
        train_dataloader__persistent_workers=False,
        randomness__seed=None),
}


def _epoch2_losses(work_dir):
    return [(r['iter'], r['loss']) for r in scalars(work_dir)
            if r.get('epoch') == 2 and 'loss' in r]


@pytest.mark.parametrize('case', list(CASES))
def test_stock_config_resumes_bit_exactly(case, tiny_folder, tmp_path, capsys):
    """2 epochs straight vs epoch 1's checkpoint resumed to 2 (validation
    after every epoch): weights and epoch 2's losses equal."""
    options = dict(
        CASES[case],
        train_cfg__max_epochs=2,
        default_hooks__checkpoint__max_keep_ckpts=-1)
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    _train(full, tiny_folder, **options)
    capsys.readouterr()
    _train(resumed, tiny_folder, '--resume', str(full / 'epoch_1.pth'),
           **options)
    out = capsys.readouterr().out
    assert 'resumed epoch: 1, iter: 15' in out

    losses = _epoch2_losses(full)
    assert [r[0] for r in losses] == list(range(16, 31))
    weights = {
        name: _load(path / 'epoch_2.pth')['state_dict']
        for name, path in (('full', full), ('resumed', resumed))
    }
    assert weights['full'].keys() == weights['resumed'].keys()
    differ = [
        key for key, value in weights['full'].items()
        if not torch.equal(value, weights['resumed'][key])
    ]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    assert _epoch2_losses(resumed) == losses  # exact float equality
    epoch1 = _load(full / 'epoch_1.pth')
    assert not torch.equal(epoch1['state_dict']['head.fc.weight'],
                           weights['full']['head.fc.weight'])

    if case == 'seed_none':
        seed = epoch1['meta']['seed']
        assert f'the run keeps the seed it was trained with, {seed}' in out
    # The states travel in a checkpoint the weights-only loader reads.
    check_checkpoint(str(full / 'epoch_1.pth'), 'checkpoint')
    states = epoch1['global_rng_states']  # GlobalRngStateHook's key
    assert set(states) >= {'python', 'numpy', 'torch', 'world_size'}


# ------------------------------------- 3. post-hoc head on a CE checkpoint

POSTHOC = 'model.head.type=LogitAdjustedLinearClsHead'
EQUAL_COUNTS = 'model.head.class_counts=[' + ','.join(['24'] * 10) + ']'


def _test(checkpoint, folder, work_dir, *options):
    return load_tool('test.py').main([
        str(TINY_CONFIG),
        str(checkpoint), '--work-dir',
        str(work_dir), '--cfg-options', *tiny_cfg_options(folder), *options
    ])


def test_posthoc_head_evaluates_a_cross_entropy_checkpoint(
        trained, tiny_folder, tmp_path):
    """The checkpoint has no head.class_counts; counts given at test time.
    With equal counts the adjustment shifts every score alike, so top-1 is
    that of the plain head: the trained weights were loaded."""
    checkpoint = trained / 'epoch_1.pth'
    assert 'head.class_counts' not in _load(checkpoint)['state_dict']
    plain = _test(checkpoint, tiny_folder, tmp_path / 'plain')
    equal = _test(checkpoint, tiny_folder, tmp_path / 'equal', POSTHOC,
                  EQUAL_COUNTS)
    assert equal['accuracy/top1'] == plain['accuracy/top1']
    skewed = _test(checkpoint, tiny_folder, tmp_path / 'skewed', POSTHOC,
                   'model.head.class_counts=[50,40,30,20,10,8,6,4,2,1]')
    assert 0 <= skewed['accuracy/top1'] <= 100


def test_class_prior_loss_missing_from_a_cross_entropy_checkpoint(
        trained, tiny_folder, tmp_path):
    """Another part with the counts protocol: LogitAdjustedLoss as the
    head's loss (``head.loss_module.class_counts`` not in the checkpoint;
    filled from the training set when training, unused when testing)."""
    metrics = _test(trained / 'epoch_1.pth', tiny_folder, tmp_path / 'la',
                    'model.head.loss.type=LogitAdjustedLoss')
    assert 'accuracy/top1' in metrics


def test_posthoc_head_without_any_counts_says_where_to_give_them(
        trained, tiny_folder, tmp_path):
    with pytest.raises(ValueError) as error:
        _test(trained / 'epoch_1.pth', tiny_folder, tmp_path / 'none', POSTHOC)
    message = str(error.value)
    assert 'posthoc_tau=1.0' in message
    assert 'model.head.class_counts=[n0,n1,...]' in message
    assert 'posthoc_tau=0' in message


def test_other_missing_keys_are_still_refused(trained, tiny_folder, tmp_path):
    checkpoint = _load(trained / 'epoch_1.pth')
    del checkpoint['state_dict']['head.fc.bias']
    damaged = tmp_path / 'no_bias.pth'
    torch.save(checkpoint, damaged)
    with pytest.raises(ValueError) as error:
        _test(damaged, tiny_folder, tmp_path / 'refused', POSTHOC,
              EQUAL_COUNTS)
    message = str(error.value)
    assert re.search(r'missing in the checkpoint \(1\): head\.fc\.bias$',
                     message, re.MULTILINE), message
    assert 'class_counts' not in message
