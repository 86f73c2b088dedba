"""Plots of a long-tailed run: per-class accuracy, accuracy curve, alpha, loss.

From a work dir written by ``tools/train.py`` and one of its checkpoints,
writes five PNG files:

- ``per_class_accuracy.png``: test accuracy of every class (bars, as
  ``LongTailAccuracy.calculate`` gives it; none for a class without test
  images), classes sorted by their training-image count, against that count
  (line, log scale);
- ``confusion_matrix.png``: the test confusion matrix (mmpretrain's
  ``ConfusionMatrix``), each row (true class) normalised to sum to 1, rows
  and columns in the same training-count order (most frequent first), so
  tail classes taken for head classes show up in the lower left;
- ``accuracy.png``: the top-1 accuracy of every validation the run logged
  (``long_tail/top1`` of ``LongTailAccuracy``, else ``accuracy/top1`` of
  mmpretrain's ``Accuracy``) against the epoch, with the many-, medium- and
  few-shot accuracies where the logs hold them. A run resumed into the same
  work dir logs into a new timestamped folder; the folders are read in
  the order of their names (the start times), and an epoch validated again
  by a later run takes that run's values (one point an epoch);
- ``alpha.png``: the hybrid weight alpha over the iterations;
- ``loss.png``: the logged losses (total, weighted feature and classifier
  terms) over the iterations.

The last three come from the logs (``<work_dir>/*/vis_data/scalars.json``)
alone: ``--curves-only`` writes just them, with no checkpoint (and no
config). A plot whose scalars the logs do not hold is skipped, saying so.

Example::

    python tools/analysis/plot_long_tail.py work_dirs/hybrid_sc_r32_cifar10lt \
        work_dirs/hybrid_sc_r32_cifar10lt/epoch_200.pth
    python tools/analysis/plot_long_tail.py work_dirs/hybrid_sc_r32_cifar10lt \
        --curves-only

A checkpoint that does not fit the model of the run's config (another depth,
another number of classes) is refused with the list of keys, as by
``tools/test.py``; ``--non-strict`` plots with the fitting weights only.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmpretrain.evaluation import ConfusionMatrix  # noqa: E402
from mmpretrain.registry import DATASETS  # noqa: E402

import mmlt_hybrid  # noqa: E402,F401  (registers the components)
from mmlt_hybrid.datasets.utils import class_counts_of  # noqa: E402
from mmlt_hybrid.evaluation.metrics import LongTailAccuracy  # noqa: E402
from mmlt_hybrid.utils import StrictLoadHook, check_checkpoint  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The parsed command line (``argv``, default ``sys.argv[1:]``).

    A checkpoint is required unless ``--curves-only``, and refused with it
    (argparse's error, exit status 2).
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='work dir of a training run')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint to evaluate (for per_class_accuracy.png and '
        'confusion_matrix.png); none with --curves-only')
    parser.add_argument(
        '--curves-only',
        action='store_true',
        help='write only the plots drawn from the logs of the run '
        '(accuracy.png, alpha.png, loss.png): no checkpoint, no config')
    parser.add_argument(
        '--config',
        help='config of the run (default: the '
        'one config file that tools/train.py saved in '
        'work_dir)')
    parser.add_argument(
        '--out-dir',
        help='where to write the PNG files '
        '(default: <work_dir>/plots)')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='plot with a checkpoint that does not fit the model built from '
        'the config (keys missing, unexpected or of another shape): only the '
        'fitting weights are loaded, the others keep their initial values. '
        'By default such a checkpoint is refused with the list of keys, as '
        'tools/test.py does')
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.curves_only:
        parser.error('no checkpoint: pass a checkpoint of the run after the '
                     'work dir (e.g. <work_dir>/epoch_200.pth) for all the '
                     'plots, or --curves-only for only those drawn from the '
                     'logs (accuracy.png, alpha.png, loss.png)')
    if args.checkpoint is not None and args.curves_only:
        parser.error(f'--curves-only plots from the logs alone and takes no '
                     f'checkpoint (got {args.checkpoint!r}); leave out the '
                     f'checkpoint or --curves-only')
    return args


def find_config(work_dir: str) -> str:
    """The config file that mmengine dumped into ``work_dir``."""
    found = sorted(glob.glob(osp.join(work_dir, '*.py')))
    if len(found) != 1:
        raise FileNotFoundError(
            f'expected exactly one config *.py in {work_dir!r}, found '
            f'{found}; pass --config')
    return found[0]


def read_records(work_dir: str) -> List[Dict]:
    """Every scalar record of every run in ``work_dir``, in logging order.

    A resumed run writes a new timestamped folder; the records are
    concatenated by folder name (the start time), then by line.
    """
    records = []
    paths = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    records.append(json.loads(line))
    return records


def is_training_record(record: Dict) -> bool:
    """Whether a scalar record is a training one: with a ``step`` (the
    iteration) and a ``loss``."""
    return 'loss' in record and 'step' in record


def read_scalars(work_dir: str) -> List[Dict]:
    """Training scalars of every run in ``work_dir``, in logging order.

    The records of :func:`read_records` that are training records
    (:func:`is_training_record`).
    """
    return [r for r in read_records(work_dir) if is_training_record(r)]


#: Keys of the top-1 accuracy in a validation record, the first present is
#: taken: ``LongTailAccuracy``'s, then mmpretrain's ``Accuracy``'s.
TOP1_KEYS = ('long_tail/top1', 'accuracy/top1')
#: ``LongTailAccuracy``'s accuracies of the shot groups, drawn where logged
#: (the metric leaves out a group without classes).
GROUP_KEYS = {
    'many': 'long_tail/many',
    'medium': 'long_tail/medium',
    'few': 'long_tail/few'
}


def accuracy_curve(records: List[Dict]) -> Dict[str, List[Tuple[int, float]]]:
    """The ``(epoch, accuracy)`` points of the validations in ``records``.

    A validation record is one with a ``step`` and a top-1 key
    (:data:`TOP1_KEYS`); training by epoch, mmengine logs the number of
    epochs trained as its ``step`` (``LoggerHook.after_val_epoch``,
    ``log_metric_by_epoch=True``). Of the records of one epoch the last one
    counts as a whole: with :func:`read_records`' order, a resumed run that
    validates an epoch again replaces the earlier run's values.

    Args:
        records (list[dict]): Scalar records in logging order, as
            :func:`read_records` gives them.

    Returns:
        dict[str, list[tuple[int, float]]]: ``top1`` and those of ``many``,
        ``medium``, ``few`` that are logged, each a list of ``(epoch,
        accuracy in percent)`` sorted by epoch; empty without validation
        records.
    """
    latest: Dict[int, Dict] = {}
    for record in records:
        if 'step' in record and any(key in record for key in TOP1_KEYS):
            latest[int(record['step'])] = record
    curve: Dict[str, List[Tuple[int, float]]] = {}
    for epoch in sorted(latest):
        record = latest[epoch]
        top1 = next(record[key] for key in TOP1_KEYS if key in record)
        curve.setdefault('top1', []).append((epoch, float(top1)))
        for name, key in GROUP_KEYS.items():
            if key in record:
                curve.setdefault(name, []).append((epoch, float(record[key])))
    return curve


def plot_accuracy(curve: Dict[str, List[Tuple[int, float]]],
                  path: str) -> None:
    """Draw :func:`accuracy_curve`'s points, accuracy (percent) against
    epoch, one line each."""
    styles = {
        'top1': dict(label='top-1', color='black', linewidth=2, zorder=3),
        'many': dict(label='many-shot', color='tab:blue'),
        'medium': dict(label='medium-shot', color='tab:orange'),
        'few': dict(label='few-shot', color='tab:red'),
    }
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curve.items():
        epochs, values = zip(*points)
        ax.plot(epochs, values, marker='.', **styles[name])
    # from the start of training to the last epoch validated
    ax.set_xlim(
        0,
        max(epoch for points in curve.values() for epoch, _ in points) + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('epoch')
    ax.set_ylabel('test accuracy (%)')
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title('Test accuracy over training')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def predict(cfg: Config,
            checkpoint: str,
            strict: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Predicted and true labels of every image of the configured test set.

    Args:
        cfg (Config): The config of the run.
        checkpoint (str): The checkpoint to evaluate.
        strict (bool): Refuse a checkpoint whose weights do not fit the
            model (:class:`~mmlt_hybrid.utils.StrictLoadHook`, as
            ``tools/test.py``), listing the keys. Defaults to True.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(pred, gt)``, integer labels in the
        order of the test loader.

    Raises:
        ValueError: With ``strict``, if the checkpoint does not fit.
    """
    cfg = cfg.copy()
    cfg.load_from = None
    cfg.resume = False
    preds, gts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cfg.work_dir = tmp
        cfg.log_level = 'WARNING'
        # A name of its own: mmengine keeps one logger and visualizer per
        # experiment name (the time to the second by default), so a second
        # call within a second would write to the first call's deleted dir.
        cfg.experiment_name = f'plot_long_tail_{osp.basename(tmp)}'
        runner = Runner.from_cfg(cfg)
        if strict:
            runner.register_hook(
                StrictLoadHook(
                    checkpoint, 'Check that the checkpoint is one of this '
                    'run (the config in the work dir, or --config), or pass '
                    '--non-strict to plot with only the fitting weights '
                    'loaded.'))
        runner.load_checkpoint(checkpoint, map_location='cpu')
        model = runner.model
        model.eval()
        with torch.no_grad():
            for data in runner.test_loop.dataloader:
                for sample in model.test_step(data):
                    preds.append(sample.pred_label[:1])
                    gts.append(sample.gt_label[:1])
    return (torch.cat(preds).cpu().numpy().astype(np.int64),
            torch.cat(gts).cpu().numpy().astype(np.int64))


def confusion_matrix_by_frequency(
        pred: np.ndarray, gt: np.ndarray,
        counts: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Row-normalised confusion matrix, classes sorted by training count.

    Args:
        pred (np.ndarray): Predicted labels, shape (N, ).
        gt (np.ndarray): True labels, shape (N, ).
        counts (Sequence[int]): Training images of every class.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(matrix, order)``. ``order`` lists
        the classes by training count, most frequent first (ties keep the
        class order); ``matrix[i, j]`` is the share of the test images of
        class ``order[i]`` predicted as ``order[j]`` (a row with no test
        image is all 0).
    """
    num_classes = len(counts)
    matrix = ConfusionMatrix.calculate(
        torch.as_tensor(pred), torch.as_tensor(gt),
        num_classes=num_classes).numpy().astype(np.float64)
    order = np.argsort(-np.asarray(counts), kind='stable')
    matrix = matrix[np.ix_(order, order)]
    rows = matrix.sum(axis=1, keepdims=True)
    return matrix / np.maximum(rows, 1), order


def matrix_ticks(order: np.ndarray,
                 classes: Sequence[str],
                 max_ticks: int = 20) -> Tuple[List[int], List[str]]:
    """Tick positions and labels of an axis of classes in ``order``.

    Args:
        order (np.ndarray): The classes along the axis.
        classes (Sequence[str]): Names of all classes.
        max_ticks (int): Most ticks to draw. Defaults to 20.

    Returns:
        tuple[list[int], list[str]]: Up to ``max_ticks`` classes, every
        position labelled with its class name; more, a tick every
        ``ceil(len(order) / max_ticks)`` positions labelled with the rank.
    """
    if len(order) <= max_ticks:
        return list(range(len(order))), [classes[i] for i in order]
    positions = list(range(0, len(order), math.ceil(len(order) / max_ticks)))
    return positions, [str(p) for p in positions]


def plot_confusion_matrix(matrix: np.ndarray, order: np.ndarray,
                          classes: Sequence[str], path: str) -> None:
    """Draw :func:`confusion_matrix_by_frequency`'s matrix as an image."""
    side = min(12, max(5, 0.3 * len(order) + 3))
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(
        matrix, cmap='viridis', vmin=0, vmax=1, interpolation='nearest')
    fig.colorbar(
        image,
        ax=ax,
        fraction=0.046,
        pad=0.04,
        label='share of the true class')
    positions, labels = matrix_ticks(order, classes)
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=45, ha='right')
    ax.set_yticks(positions)
    ax.set_yticklabels(labels)
    named = len(positions) == len(order)
    what = 'class' if named else 'class rank'
    ax.set_xlabel(f'predicted {what} (most frequent in training first)')
    ax.set_ylabel(f'true {what}')
    ax.set_title('Confusion matrix, rows normalised')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_class(acc: np.ndarray, counts: Sequence[int],
                   classes: Sequence[str], path: str) -> None:
    """Bars of per-class accuracy (percent; NaN, no bar, for a class without
    test images), classes sorted by training count."""
    order = np.argsort(-np.asarray(counts), kind='stable')
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(order) + 3), 4))
    ax.bar(range(len(order)), acc[order], color='tab:blue')
    ax.set_ylabel('test accuracy (%)', color='tab:blue')
    ax.set_ylim(0, 100)
    ax.set_xlabel('class, by training-image count (most frequent first)')
    if len(order) <= 20:
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([classes[i] for i in order],
                           rotation=45,
                           ha='right')
    twin = ax.twinx()
    twin.plot(
        range(len(order)),
        np.asarray(counts)[order],
        color='tab:red',
        marker='.')
    twin.set_yscale('log')
    twin.set_ylabel('training images', color='tab:red')
    ax.set_title('Per-class accuracy vs training frequency')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(records: List[Dict], keys: Sequence[str], ylabel: str,
                path: str) -> Optional[str]:
    """Line plot of the given scalar keys over iterations."""
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for key in keys:
        points: List[Tuple[int, float]] = [(r['step'], r[key]) for r in records
                                           if key in r]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=key)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel('iteration')
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Optional[List[str]] = None) -> None:
    """Write the plots as the command line (``argv``) says.

    The checkpoint is checked as ``tools/test.py`` checks it: an intact
    checkpoint file (:func:`~mmlt_hybrid.utils.check_checkpoint`) whose
    weights fit the model of the config, unless ``--non-strict``. With
    ``--curves-only`` only the plots of the logs are written.
    """
    args = parse_args(argv)
    if not osp.isdir(args.work_dir):
        raise FileNotFoundError(
            f'work dir {args.work_dir!r} is not a directory; expected the '
            'work dir of a training run (holding its config and logs)')
    out_dir = args.out_dir or osp.join(args.work_dir, 'plots')
    written: List[str] = []
    if not args.curves_only:
        check_checkpoint(args.checkpoint, 'checkpoint')
        cfg = Config.fromfile(args.config or find_config(args.work_dir))
        os.makedirs(out_dir, exist_ok=True)
        counts = class_counts_of(DATASETS.build(cfg.train_dataloader.dataset))
        pred, gt = predict(cfg, args.checkpoint, strict=not args.non_strict)
        acc = LongTailAccuracy.calculate(pred, gt, counts)['per_class'].numpy()
        classes = DATASETS.build(
            cfg.test_dataloader.dataset).metainfo['classes']
        written = [
            osp.join(out_dir, name)
            for name in ('per_class_accuracy.png', 'confusion_matrix.png')
        ]
        plot_per_class(acc, counts, classes, written[0])
        plot_confusion_matrix(*confusion_matrix_by_frequency(pred, gt, counts),
                              classes, written[1])
    os.makedirs(out_dir, exist_ok=True)

    records = read_records(args.work_dir)
    curve = accuracy_curve(records)
    if curve:
        path = osp.join(out_dir, 'accuracy.png')
        plot_accuracy(curve, path)
        written.append(path)
    else:
        print(f'the logs in {args.work_dir} (*/vis_data/scalars.json) hold no '
              f'validation records (a step and one of {list(TOP1_KEYS)}); '
              'skipped accuracy.png')
    training = [r for r in records if is_training_record(r)]
    for name, keys, ylabel in (
        ('alpha.png', ['alpha'], 'alpha'),
        ('loss.png', ['loss', 'loss_feat', 'loss_cls'], 'loss'),
    ):
        path = plot_curves(training, keys, ylabel, osp.join(out_dir, name))
        if path is None:
            print(f'no {keys} scalars in {args.work_dir}; skipped {name}')
        else:
            written.append(path)
    for path in written:
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
