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
    for name in ('per_class_accuracy.png', 'confusion_matrix.png', 'alpha.png',
                 'loss.png'):
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


def test_missing_checkpoint_is_a_clear_error(trained):
    result = run(
        python_tool('analysis/plot_long_tail.py', trained,
                    trained / 'nope.pth'),
        check=False)
    assert result.returncode != 0
    assert 'checkpoint' in result.stderr and 'nope.pth' in result.stderr
