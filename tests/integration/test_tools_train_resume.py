"""tools/train.py: train, resume bit-exactly, then evaluate with tools/test.py.

A stock mmpretrain config (``mmpretrain::resnet/resnet18_8xb16_cifar10.py``,
see tests/configs/tiny_resnet18_cifar10.py) is pointed at the generated
10-class image folder (240 training images, 15 iterations of 16 per epoch)
and shrunk by ``--cfg-options`` (tests/tool_runner.py).
"""
import json
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config
from tool_runner import (
    TINY_CONFIG,
    load_tool,
    python_tool,
    run,
    scalars,
    tiny_cfg_options,
)

import mmlt_hybrid  # noqa: F401  (safe globals for torch.load below)


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """The tools' parse_args export LOCAL_RANK; undo that after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


@pytest.fixture(scope='module')
def runs(tiny_folder, tmp_path_factory):
    """An interrupted-then-resumed run and an uninterrupted run.

    Both follow the same 3-epoch schedule: MultiStepLR with its milestone at
    epoch 2 (lr 0.1 -> 0.01 from the third epoch on) and an explicit
    ``end=3``, so the scheduler state is the same whether the loop stops
    after 2 epochs or not. (mmengine sets a scheduler's default ``end`` to
    the ``max_epochs`` it was built with and restores it on resume, so a run
    built for 2 epochs and later extended would stop scheduling at 2.)

    The interrupted run stops after epoch 2 (``max_epochs=2``) and is
    continued with ``--resume`` (bare flag: latest checkpoint of the work
    dir) to epoch 3.
    """
    root = tmp_path_factory.mktemp('resume')
    options = tiny_cfg_options(
        tiny_folder, param_scheduler__milestones='[2]', param_scheduler__end=3)
    interrupted, full = root / 'interrupted', root / 'full'
    run(
        python_tool('train.py', TINY_CONFIG, '--work-dir', interrupted,
                    '--cfg-options', *options, 'train_cfg.max_epochs=2'))
    assert (interrupted / 'epoch_2.pth').is_file()
    assert not (interrupted / 'epoch_3.pth').exists()
    resumed = run(
        python_tool('train.py', TINY_CONFIG, '--work-dir', interrupted,
                    '--resume', '--cfg-options', *options,
                    'train_cfg.max_epochs=3'),
        fresh=True)  # a real process of its own, as a user's resume is
    run(
        python_tool('train.py', TINY_CONFIG, '--work-dir', full,
                    '--cfg-options', *options, 'train_cfg.max_epochs=3'))
    return dict(
        interrupted=interrupted, full=full, resumed=resumed, options=options)


def _epoch3_train_records(work_dir):
    return [(r['iter'], r['loss'], r['lr']) for r in scalars(work_dir)
            if r.get('epoch') == 3 and 'loss' in r]


def test_resume_equals_uninterrupted_run(runs):
    """Epoch 3 after ``--resume`` is bit-identical to an uninterrupted run.

    Why equality is real here: every random draw of epoch 3 is a function of
    what the checkpoint restores plus (seed, epoch).

    - Batches: ``DefaultSampler`` shuffles with a generator seeded by
      ``seed + epoch``.
    - Augmentation (RandomCrop, RandomFlip draw from numpy's global RNG):
      the training loader has ``num_workers=1`` and
      ``persistent_workers=False`` (the stock config does not set it), so a
      new worker starts every epoch and mmengine's ``worker_init_fn`` seeds
      it with ``seed + worker_id`` (+ rank * workers), the same value every
      epoch. With ``num_workers=0`` the draws would come from the main
      process's numpy RNG, whose state after epoch 2 no checkpoint stores;
      with ``persistent_workers=True`` the worker's RNG would carry over from
      epochs 1-2 in the uninterrupted run only. (Measured here: with
      ``num_workers=0`` or with ``persistent_workers=True`` the epoch-3
      losses differ.)
    - Model, optimizer (SGD momentum), scheduler and message hub are restored
      from ``epoch_2.pth``, which the weights-only loader reads because
      ``mmlt_hybrid.compat`` allows mmengine's classes.
    """
    assert 'resumed epoch: 2, iter: 30' in runs['resumed'].stdout
    resumed = _epoch3_train_records(runs['interrupted'])
    full = _epoch3_train_records(runs['full'])
    assert [r[0] for r in full] == list(range(31, 46))
    # The milestone took effect in both: the scheduler state was resumed.
    assert [r[2] for r in full] == [pytest.approx(0.01)] * 15
    assert resumed == full  # exact float equality of every epoch-3 loss

    state_resumed = torch.load(
        runs['interrupted'] / 'epoch_3.pth', map_location='cpu')
    state_full = torch.load(runs['full'] / 'epoch_3.pth', map_location='cpu')
    assert state_resumed['meta']['epoch'] == state_full['meta']['epoch'] == 3
    weights_resumed = state_resumed['state_dict']
    weights_full = state_full['state_dict']
    assert weights_resumed.keys() == weights_full.keys()
    for key in weights_full:
        assert torch.equal(weights_resumed[key], weights_full[key]), key
    # Different from the epoch-2 weights: epoch 3 did train.
    weights_epoch2 = torch.load(
        runs['interrupted'] / 'epoch_2.pth', map_location='cpu')['state_dict']
    assert not torch.equal(weights_epoch2['head.fc.weight'],
                           weights_full['head.fc.weight'])


def test_test_tool_evaluates_trained_checkpoint(runs, tmp_path):
    """tools/test.py on a tools/train.py checkpoint; --out writes files.

    The top-1 it reports equals the validation top-1 that training logged
    for the same weights, and equals the accuracy recomputed by hand from the
    dumped per-sample predictions.
    """
    checkpoint = runs['full'] / 'epoch_3.pth'
    predictions = tmp_path / 'pred.pkl'
    metrics_file = tmp_path / 'metrics.json'
    run(
        python_tool('test.py', TINY_CONFIG, checkpoint, '--work-dir',
                    tmp_path / 'wd', '--out', predictions, '--cfg-options',
                    *runs['options']))
    run(
        python_tool('test.py', TINY_CONFIG, checkpoint, '--work-dir',
                    tmp_path / 'wd2', '--out', metrics_file, '--out-item',
                    'metrics', '--cfg-options', *runs['options']))

    with open(predictions, 'rb') as f:
        samples = pickle.load(f)
    assert len(samples) == 40  # 10 classes x 4 test images
    correct = sum(
        int(s['pred_label'].item()) == int(s['gt_label'].item())
        for s in samples)
    hand_top1 = 100.0 * correct / len(samples)

    with open(metrics_file) as f:
        metrics = json.load(f)
    val_top1 = [
        r['accuracy/top1'] for r in scalars(runs['full'])
        if 'accuracy/top1' in r and r.get('step') == 3
    ]
    assert metrics['accuracy/top1'] == pytest.approx(hand_top1, abs=1e-9)
    assert val_top1 == [pytest.approx(hand_top1, abs=1e-9)]


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_missing_files_give_clear_errors(tool, tmp_path):
    """A missing config or checkpoint is named in a FileNotFoundError."""
    module = load_tool(f'{tool}.py')
    missing_config = tmp_path / 'no_such_config.py'
    checkpoint_args = [] if tool == 'train' else [str(TINY_CONFIG)]
    with pytest.raises(
            FileNotFoundError, match='config file not found.*'
            'no_such_config.py'):
        module.main([str(missing_config)] +
                    ([] if tool == 'train' else ['x.pth']))
    missing_ckpt = str(tmp_path / 'no_such.pth')
    if tool == 'train':
        argv = [str(TINY_CONFIG), '--resume', missing_ckpt]
    else:
        argv = checkpoint_args + [missing_ckpt]
    with pytest.raises(
            FileNotFoundError,
            match='checkpoint.*file not found.*no_such.pth'):
        module.main(argv)
    if tool == 'train':
        with pytest.raises(
                FileNotFoundError,
                match=r'checkpoint \(load_from\).*no_such.pth'):
            module.main([
                str(TINY_CONFIG), '--work-dir',
                str(tmp_path / 'wd'), '--cfg-options',
                f'load_from={missing_ckpt}'
            ])


def _merged(tool, cfg_dict, argv):
    module = load_tool(f'{tool}.py')
    args = module.parse_args(argv)
    return module.merge_args(Config(cfg_dict), args)


@pytest.mark.parametrize('tool, argv', [
    ('train', ['cfg.py', '--work-dir', 'wd']),
    ('test', ['cfg.py', 'ckpt.pth', '--work-dir', 'wd']),
])
def test_class_counts_hook_added_for_long_tail_accuracy(tool, argv):
    """ClassCountsHook is appended once when a LongTailAccuracy needs it."""
    long_tail = dict(type='LongTailAccuracy')
    cases = [
        # (evaluators, custom_hooks before) -> hooks after
        (dict(val_evaluator=[dict(type='Accuracy'), long_tail]), None,
         [dict(type='ClassCountsHook')]),
        (dict(test_evaluator=dict(type='Evaluator', metrics=[long_tail])),
         [dict(type='EMAHook')
          ], [dict(type='EMAHook'),
              dict(type='ClassCountsHook')]),
        (dict(val_evaluator=long_tail), [dict(type='ClassCountsHook', x=1)],
         [dict(type='ClassCountsHook', x=1)]),
        (dict(val_evaluator=dict(type='Accuracy')), None, None),
    ]
    for evaluators, hooks, expected in cases:
        cfg_dict = dict(evaluators, optim_wrapper=dict(optimizer=dict()))
        if hooks is not None:
            cfg_dict['custom_hooks'] = hooks
        if tool == 'test':
            cfg_dict.setdefault('test_evaluator', dict(type='Accuracy'))
        cfg = _merged(tool, cfg_dict, argv)
        assert cfg.get('custom_hooks') == expected, evaluators


def test_train_flags_change_the_config():
    cfg = _merged(
        'train',
        dict(
            optim_wrapper=dict(optimizer=dict(type='SGD')),
            auto_scale_lr=dict(base_batch_size=128),
            val_cfg=dict(),
            val_dataloader=dict(batch_size=2),
            val_evaluator=dict(type='Accuracy'),
            train_dataloader=dict(batch_size=2, persistent_workers=True)),
        [
            'cfg.py', '--resume', 'a.pth', '--auto-scale-lr', '--no-validate',
            '--no-persistent-workers', '--launcher', 'pytorch'
        ])
    assert cfg.resume is True and cfg.load_from == 'a.pth'
    assert cfg.auto_scale_lr == dict(base_batch_size=128, enable=True)
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.launcher == 'pytorch'
    assert cfg.work_dir == osp.join('./work_dirs', 'cfg')

    auto = _merged('train', dict(optim_wrapper=dict()), ['c.py', '--resume'])
    assert auto.resume is True and auto.load_from is None

    with pytest.raises(
            ValueError,
            match='--auto-scale-lr needs auto_scale_lr'
            r'=dict\(base_batch_size=N\)'):
        _merged('train', dict(optim_wrapper=dict()),
                ['cfg.py', '--auto-scale-lr'])


def test_test_out_adds_dump_results_to_every_evaluator_form():
    dump = dict(type='DumpResults', out_file_path='p.pkl')
    argv = ['cfg.py', 'ckpt.pth', '--out', 'p.pkl']
    accuracy = dict(type='Accuracy')
    for evaluator, expected in [
        (accuracy, [accuracy, dump]),
        ([accuracy], [accuracy, dump]),
        (dict(type='Evaluator', metrics=accuracy),
         dict(type='Evaluator', metrics=[accuracy, dump])),
    ]:
        cfg = _merged('test', dict(test_evaluator=evaluator), argv)
        assert cfg.test_evaluator == expected
        assert cfg.load_from == 'ckpt.pth'
    with pytest.raises(SystemExit):
        load_tool('test.py').parse_args(
            ['cfg.py', 'ckpt.pth', '--out', 'p.json'])
