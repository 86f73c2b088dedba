"""tools/analysis/plot_long_tail.py draws the plots of a training run."""
import json

import numpy as np
import pytest
from mmengine.config import Config
from mmpretrain.registry import DATASETS
from PIL import Image
from tool_runner import REPO_ROOT, load_tool, python_tool, run, scalars

from mmlt_hybrid.datasets.utils import class_counts_of
from mmlt_hybrid.evaluation.metrics import LongTailAccuracy

CONFIG = REPO_ROOT / 'tests' / 'configs' / 'tiny_hybrid_sc.py'


def _load_tool():
    return load_tool('analysis/plot_long_tail.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('plot') / 'run'
    run(python_tool('train.py', CONFIG, '--work-dir', work_dir))
    return work_dir


def test_plots_are_written(trained, tmp_path):
    out = tmp_path / 'plots'
    result = run(
        python_tool('analysis/plot_long_tail.py', trained,
                    trained / 'epoch_3.pth', '--out-dir', out))
    for name in ('per_class_accuracy.png', 'confusion_matrix.png',
                 'accuracy.png', 'alpha.png', 'loss.png'):
        path = out / name
        assert f'wrote {path}' in result.stdout
        with Image.open(path) as image:
            assert image.format == 'PNG' and min(image.size) > 100


def test_per_class_accuracy_matches_the_run(trained):
    """The tool's per-class accuracies average to the run's mean class acc."""
    tool = _load_tool()
    cfg = Config.fromfile(str(tool.find_config(str(trained))))
    counts = class_counts_of(DATASETS.build(cfg.train_dataloader.dataset))
    # IF 10 over 24 images per class (int(24 * 10 ** (-i / 9))).
    assert counts == [24, 18, 14, 11, 8, 6, 5, 4, 3, 2]
    pred, gt = tool.predict(cfg, str(trained / 'epoch_3.pth'))
    assert np.bincount(gt).tolist() == [4] * 10  # 4 test images a class
    # What the tool plots: the metric's per-class accuracy, in percent.
    acc = LongTailAccuracy.calculate(pred, gt, counts)['per_class'].numpy()
    val = [r for r in scalars(trained) if 'long_tail/mean_class_acc' in r]
    assert acc.mean() == pytest.approx(
        val[-1]['long_tail/mean_class_acc'], abs=1e-6)
    # The confusion matrix of the same predictions: its diagonal is the
    # per-class accuracy (classes in training-count order, here 0..9).
    matrix, order = tool.confusion_matrix_by_frequency(pred, gt, counts)
    assert order.tolist() == list(range(10))
    assert 100 * np.diag(matrix) == pytest.approx(acc)


def test_confusion_matrix_is_sorted_by_training_count_and_row_normalised():
    tool = _load_tool()
    # Classes a, b, c, d with 5, 20, 10, 10 training images: b, c, d, a
    # (the tie c, d keeps the class order).
    counts = [5, 20, 10, 10]
    gt = np.array([0, 0, 1, 1, 1, 1, 2, 2, 3])
    pred = np.array([0, 1, 1, 1, 2, 0, 2, 2, 2])
    matrix, order = tool.confusion_matrix_by_frequency(pred, gt, counts)
    assert order.tolist() == [1, 2, 3, 0]
    # By hand, rows (true) and columns (predicted) in the order b, c, d, a:
    # b: 2 of 4 right, 1 as c, 1 as a; c: 2 of 2 right; d: its one image as
    # c; a: 1 of 2 right, 1 as b.
    expected = [[0.5, 0.25, 0.0, 0.25], [0.0, 1.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]]
    np.testing.assert_allclose(matrix, expected, atol=1e-12)


def test_confusion_matrix_ticks_name_few_classes_and_thin_out_many(tmp_path):
    tool = _load_tool()
    names = ['cat', 'dog', 'eel']
    assert tool.matrix_ticks(np.array([2, 0, 1]),
                             names) == ([0, 1, 2], ['eel', 'cat', 'dog'])
    # 50 classes: a tick every 3rd rank (at most 20 ticks), labelled by rank.
    positions, labels = tool.matrix_ticks(
        np.arange(50)[::-1], [f'c{i}' for i in range(50)])
    assert positions == list(range(0, 50, 3))
    assert labels == [str(p) for p in positions]
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 100, size=50)
    matrix, order = tool.confusion_matrix_by_frequency(
        rng.integers(0, 50, size=500),
        np.arange(500) % 50, counts)
    path = tmp_path / 'cm.png'
    tool.plot_confusion_matrix(matrix, order, [f'c{i}' for i in range(50)],
                               str(path))
    with Image.open(path) as image:
        assert image.format == 'PNG' and min(image.size) > 100


def test_read_scalars_keeps_training_records_in_run_order(tmp_path):
    tool = _load_tool()
    for stamp, records in (('20260101_000000', [
        {
            'loss': 2.0,
            'alpha': 1.0,
            'step': 1
        },
        {
            'long_tail/top1': 10.0,
            'step': 1
        },
    ]), ('20260102_000000', [{
            'loss': 1.0,
            'alpha': 0.5,
            'step': 2
    }])):
        folder = tmp_path / stamp / 'vis_data'
        folder.mkdir(parents=True)
        (folder /
         'scalars.json').write_text('\n'.join(json.dumps(r)
                                              for r in records) + '\n')
    got = tool.read_scalars(str(tmp_path))
    assert [(r['step'], r['loss']) for r in got] == [(1, 2.0), (2, 1.0)]


def test_accuracy_curve_of_the_run_is_by_epoch(trained):
    """mmengine logs a validation by epoch: the tiny run (3 epochs of 6
    iterations, validated every 3rd epoch) gives one point, at epoch 3 (not
    iteration 18), with the run's logged top-1 and its shot groups."""
    tool = _load_tool()
    val = [r for r in scalars(trained) if 'long_tail/top1' in r]
    assert len(val) == 1
    curve = tool.accuracy_curve(tool.read_records(str(trained)))
    # IF 10 over 24 images (thresholds 100, 20): medium class 0, few 1..9.
    assert curve == {
        'top1': [(3, val[0]['long_tail/top1'])],
        'medium': [(3, val[0]['long_tail/medium'])],
        'few': [(3, val[0]['long_tail/few'])],
    }


def _write_logs(work_dir, runs):
    """Write ``<work_dir>/<stamp>/vis_data/scalars.json`` of every run, in
    the order given (not the order of the stamps)."""
    for stamp, records in runs.items():
        folder = work_dir / stamp / 'vis_data'
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text(''.join(
            json.dumps(r) + '\n' for r in records))


def _train(epoch, step, loss):
    return dict(
        lr=0.1,
        alpha=1 - epoch / 40,
        loss=loss,
        epoch=epoch,
        iter=step,
        step=step)


def _val(epoch, top1, many, medium, few):
    return {
        'long_tail/top1': top1,
        'long_tail/mean_class_acc': (many + medium + few) / 3,
        'long_tail/many': many,
        'long_tail/medium': medium,
        'long_tail/few': few,
        'data_time': 0.01,
        'time': 0.02,
        'step': epoch
    }


#: A run validated every 10 epochs (2 iterations an epoch), stopped in
#: epoch 14 with its last checkpoint at epoch 5, resumed from there into the
#: same work dir: epoch 10 is validated again, with other numbers.
RESUMED_RUN = {
    # The resumed run first on disk: the folder names give the order.
    '20260102_080000': [
        _train(6, 11, 1.5),
        _val(10, 32.5, 60.0, 30.0, 5.0),
        _train(11, 21, 1.2),
        _val(20, 41.0, 70.0, 40.0, 12.5),
    ],
    '20260101_120000': [
        _train(1, 1, 2.3),
        _train(5, 9, 1.9),
        _val(10, 30.0, 55.0, 25.0, 2.5),
        _train(14, 27, 1.1),
    ],
}


def test_accuracy_curve_of_a_resumed_run_takes_the_later_run(tmp_path):
    tool = _load_tool()
    _write_logs(tmp_path, RESUMED_RUN)
    curve = tool.accuracy_curve(tool.read_records(str(tmp_path)))
    assert curve == {
        'top1': [(10, 32.5), (20, 41.0)],
        'many': [(10, 60.0), (20, 70.0)],
        'medium': [(10, 30.0), (20, 40.0)],
        'few': [(10, 5.0), (20, 12.5)],
    }
    # The training scalars keep both runs, the earlier run first.
    assert [r['step']
            for r in tool.read_scalars(str(tmp_path))] == [1, 9, 27, 11, 21]


def test_accuracy_curve_of_mmpretrain_accuracy_and_missing_groups():
    """``accuracy/top1`` counts as top-1; a shot group is drawn only where
    logged; the records come sorted by epoch; a record with no step (as of
    a test run) is no point."""
    tool = _load_tool()
    records = [
        {
            'accuracy/top1': 20.0,
            'accuracy/top5': 60.0,
            'step': 20
        },
        {
            'loss': 1.0,
            'step': 5
        },
        {
            'accuracy/top1': 10.0,
            'accuracy/top5': 50.0,
            'step': 10
        },
        {
            'long_tail/top1': 99.0,
            'long_tail/few': 99.0
        },
        {
            'long_tail/top1': 30.0,
            'long_tail/few': 7.5,
            'step': 30
        },
    ]
    assert tool.accuracy_curve(records) == {
        'top1': [(10, 10.0), (20, 20.0), (30, 30.0)],
        'few': [(30, 7.5)],
    }
    assert tool.accuracy_curve([{'loss': 1.0, 'step': 1}]) == {}


def test_curves_only_needs_no_checkpoint(tmp_path, capsys):
    """No checkpoint, no config in the work dir: the three log plots."""
    tool = _load_tool()
    work_dir, out = tmp_path / 'run', tmp_path / 'plots'
    _write_logs(work_dir, RESUMED_RUN)
    tool.main([str(work_dir), '--curves-only', '--out-dir', str(out)])
    stdout = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        'accuracy.png', 'alpha.png', 'loss.png'
    ]
    for path in out.iterdir():
        assert f'wrote {path}' in stdout
        with Image.open(path) as image:
            assert image.format == 'PNG' and min(image.size) > 100


def test_no_validation_records_is_said(tmp_path, capsys):
    tool = _load_tool()
    _write_logs(tmp_path, {'20260101_120000': [_train(1, 1, 2.3)]})
    tool.main([str(tmp_path), '--curves-only'])
    stdout = capsys.readouterr().out
    assert 'hold no validation records' in stdout
    assert 'skipped accuracy.png' in stdout
    assert sorted(p.name for p in (tmp_path / 'plots').iterdir()) == [
        'alpha.png', 'loss.png'
    ]


def test_checkpoint_xor_curves_only_is_an_argparse_error(tmp_path, capsys):
    tool = _load_tool()
    _write_logs(tmp_path, RESUMED_RUN)
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(tmp_path)])
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert 'no checkpoint' in stderr and '--curves-only' in stderr
    with pytest.raises(SystemExit) as exit_:
        tool.main(
            [str(tmp_path),
             str(tmp_path / 'epoch_5.pth'), '--curves-only'])
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert 'takes no checkpoint' in stderr and 'epoch_5.pth' in stderr
    assert not (tmp_path / 'plots').exists()


def test_missing_checkpoint_is_a_clear_error(trained):
    result = run(
        python_tool('analysis/plot_long_tail.py', trained,
                    trained / 'nope.pth'),
        check=False)
    assert result.returncode != 0
    assert 'checkpoint' in result.stderr and 'nope.pth' in result.stderr
