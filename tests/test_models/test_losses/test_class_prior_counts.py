"""Class counts travel from the training set to the loss (tools/train.py,
nothing typed into the config), are saved in the checkpoint, and drive
post-hoc logit adjustment in tools/test.py without the training set."""
import math
import pickle
from types import SimpleNamespace

import pytest
import torch
from mmpretrain.registry import MODELS
from tool_runner import TINY_CONFIG, python_tool, run, tiny_cfg_options

import mmlt_hybrid  # noqa: F401  (safe globals for torch.load below)
from mmlt_hybrid.utils import StrictLoadHook

# A long-tailed generated folder: 10 classes, 20 ... 1 training images.
TRAIN_COUNTS = [20, 14, 10, 7, 5, 4, 3, 2, 2, 1]


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """The tools' parse_args export LOCAL_RANK; undo that after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


@pytest.fixture(scope='module')
def lt_folder(tmp_path_factory):
    from conftest import make_image_folder
    return make_image_folder(
        tmp_path_factory.mktemp('lt10'), TRAIN_COUNTS, test_per_class=2)


def _predictions(path):
    with open(path, 'rb') as f:
        samples = pickle.load(f)
    scores = torch.stack([torch.as_tensor(s['pred_score']) for s in samples])
    labels = [int(s['pred_label']) for s in samples]
    return scores.double(), labels


def test_train_then_posthoc_test_without_the_training_set(lt_folder, tmp_path):
    work = tmp_path / 'work'
    options = tiny_cfg_options(
        lt_folder,
        model__head__type='LogitAdjustedLinearClsHead',
        model__head__posthoc_tau=0.0,
        model__head__loss__type='LogitAdjustedLoss',
        train_dataloader__batch_size=16,
        train_cfg__max_epochs=1)
    run(
        python_tool('train.py', TINY_CONFIG, '--work-dir', work,
                    '--cfg-options', *options))
    checkpoint = work / 'epoch_1.pth'
    state = torch.load(checkpoint, map_location='cpu')['state_dict']
    # The folder's counts reached the loss and the head (the config has
    # class_counts=None) and were saved with the weights.
    assert state['head.loss_module.class_counts'].tolist() == TRAIN_COUNTS
    assert state['head.class_counts'].tolist() == TRAIN_COUNTS

    # tools/test.py with a training folder that does not exist: the counts
    # can only come from the checkpoint. Strict loading is on (default).
    no_train = [
        o for o in options
        if not o.startswith('train_dataloader.dataset.data_root=')
    ] + [f'train_dataloader.dataset.data_root={tmp_path / "missing"}']
    outputs = {}
    for tau in (0.0, 1.0):
        out = tmp_path / f'pred_{tau}.pkl'
        run(
            python_tool('test.py', TINY_CONFIG, checkpoint, '--work-dir',
                        tmp_path / f'test_{tau}', '--out', out, '--out-item',
                        'pred', '--cfg-options', *no_train,
                        f'model.head.posthoc_tau={tau}'))
        outputs[tau] = _predictions(out)
    plain, _ = outputs[0.0]
    adjusted, labels = outputs[1.0]
    # Reference: log of the unadjusted softmax is the logits up to a
    # per-row constant; subtract log prior and renormalise, by hand.
    total = sum(TRAIN_COUNTS)
    expected, expected_labels = [], []
    for row in plain.tolist():
        z = [
            math.log(p) - math.log(c / total)
            for p, c in zip(row, TRAIN_COUNTS)
        ]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        expected.append([v / sum(e) for v in e])
        expected_labels.append(max(range(len(z)), key=z.__getitem__))
    assert torch.allclose(
        adjusted, torch.tensor(expected, dtype=torch.float64), atol=1e-5)
    assert labels == expected_labels


def _strict_hook_on(model, checkpoint):
    hook = StrictLoadHook('ckpt.pth', 'Do something.')
    hook.after_load_checkpoint(
        SimpleNamespace(model=model), dict(state_dict=checkpoint))


def test_strict_loading_lets_an_empty_buffer_take_the_checkpoints_shape():
    trained = MODELS.build(
        dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=2,
            loss=dict(type='LogitAdjustedLoss', class_counts=[4, 2, 1])))
    state = trained.state_dict()
    fresh = MODELS.build(
        dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=2,
            loss=dict(type='LogitAdjustedLoss')))
    _strict_hook_on(fresh, state)  # no error: (0,) takes (3,)
    # A buffer that holds counts is not resized silently.
    other = MODELS.build(
        dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=2,
            loss=dict(type='LogitAdjustedLoss', class_counts=[1, 1])))
    with pytest.raises(ValueError, match=r'shapes differ.*class_counts'):
        _strict_hook_on(other, state)
