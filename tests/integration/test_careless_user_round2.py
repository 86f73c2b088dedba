"""Careless inputs that gave a silent wrong result or an obscure error.

1. tools/analysis/plot_long_tail.py with a checkpoint of another model: it
   loaded the fitting weights and plotted partly random ones (exit 0); now
   refused as by tools/test.py (StrictLoadHook), keys listed.
2. tools/dataset_converters/inat2018.py: two images sharing an id both took
   one annotation's label, a category id 1.0 was written as "1.0"; now
   every malformed record is refused naming it, and nothing is written.
3. A file that is not a checkpoint (a work dir's last_checkpoint, a zip
   archive, any binary) ended in torch's "Unsupported operand 47" with the
   advice to load unsafely; a folder was "file not found". Now
   check_checkpoint / require_file say what the path is and what was
   expected, for tools/test.py, --resume, load_from and the plot tool.
4. --resume with a model that does not fit the checkpoint died in torch's
   optimizer ("parameter group that doesn't match"); now refused before
   anything is loaded, keys listed (ResumeCheckHook).
5. A malformed line of a ``path label`` list file gave "not enough values
   to unpack"; a label beyond the classes gave "class 10 has no images".
   Now the file, the line number and the problem are named, by the one
   parser of the datasets and tools/dataset_converters/check_lt_list.py.
6. --resume epoch_2.pth with max_epochs=1 trained nothing, exit 0, no word;
   now refused naming the epoch, max_epochs and what to do.

The tools run in this process (``main(argv)``); the one training run is the
tiny Hybrid-SC config (generated data) for 2 epochs.
"""
import json
import pickle
import re
import shutil
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmpretrain.registry import DATASETS, MODELS
from tool_runner import REPO_ROOT, load_tool
from torch import nn

import mmlt_hybrid  # noqa: F401  (registers the components, safe globals)
from mmlt_hybrid.utils.checkpoints import check_checkpoint

CONFIG = REPO_ROOT / 'tests' / 'configs' / 'tiny_hybrid_sc.py'
IMAGENET_LT = REPO_ROOT / 'configs' / '_base_' / 'datasets' / 'imagenetlt.py'
#: torch's advice to load unsafely, which no message of ours may repeat.
UNSAFE = re.compile(r'weights_only\s*=\s*False|weights_only.*False',
                    re.IGNORECASE)


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """The tools' parse_args export LOCAL_RANK; undo that after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


def _load(path):
    return torch.load(path, map_location='cpu')  # weights only


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """tiny_hybrid_sc trained 2 epochs: epoch_1.pth, epoch_2.pth."""
    work_dir = tmp_path_factory.mktemp('round2') / 'run'
    load_tool('train.py').main([
        str(CONFIG), '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options',
        'train_cfg.max_epochs=2'
    ])
    assert _load(work_dir / 'epoch_2.pth')['meta']['epoch'] == 2
    return work_dir


def _checkpoint_of(tmp_path, **model_changes):
    """A checkpoint (weights only) of the tiny model, changed as given."""
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(model_changes)
    model = MODELS.build(cfg.model)
    path = tmp_path / 'other_model.pth'
    torch.save(
        dict(state_dict=model.state_dict(), meta=dict(epoch=2, iter=12)), path)
    return path


# ------------------------------------------- 1. plot tool loads strictly


@pytest.mark.parametrize(
    'changes, expected', [
        ({
            'model.backbone.depth': 32
        }, [r'unexpected in the checkpoint \(72\): backbone\.layer1\.3\.']),
        ({
            'model.head.num_classes': 7
        }, [
            r'head\.fc\.weight: \(7, 64\) in the checkpoint, \(10, 64\) in '
            r'the model', r'head\.fc\.bias: \(7,\)'
        ]),
    ],
    ids=['another-depth', 'another-head'])
def test_plot_tool_refuses_a_checkpoint_of_another_model(
        trained, tmp_path, changes, expected):
    other = _checkpoint_of(tmp_path, **changes)
    out = tmp_path / 'plots'
    with pytest.raises(ValueError) as error:
        load_tool('analysis/plot_long_tail.py').main(
            [str(trained), str(other), '--out-dir',
             str(out)])
    message = str(error.value)
    assert str(other) in message and 'does not fit the model' in message
    for pattern in expected:
        assert re.search(pattern, message), message
    assert '--non-strict' in message
    assert not out.exists() or not list(out.glob('*.png'))


def test_plot_tool_non_strict_and_not_a_checkpoint(trained, tmp_path):
    """--non-strict plots anyway; a text file is named as one."""
    tool = load_tool('analysis/plot_long_tail.py')
    with pytest.raises(ValueError, match='text file') as error:
        tool.main([str(trained), str(trained / 'last_checkpoint')])
    assert not UNSAFE.search(str(error.value))
    other = _checkpoint_of(tmp_path, **{'model.head.num_classes': 7})
    tool.main([
        str(trained),
        str(other), '--out-dir',
        str(tmp_path / 'p'), '--non-strict'
    ])
    assert (tmp_path / 'p' / 'per_class_accuracy.png').is_file()


# --------------------------------------- 2. iNaturalist converter records


def _inat(images, annotations, categories=(0, 1, 2)):
    return dict(
        images=[dict(id=i, file_name=name) for i, name in images],
        annotations=[
            dict(id=k, image_id=i, category_id=c)
            for k, (i, c) in enumerate(annotations)
        ],
        categories=[dict(id=c, name=f'species {c}') for c in categories])


GOOD_IMAGES = [(7, 'train_val2018/a.jpg'), (3, 'train_val2018/b.jpg'),
               (11, 'train_val2018/c.jpg')]
GOOD_ANNOTATIONS = [(3, 0), (7, 2), (11, 1)]


def _edit(data, what):
    """Apply one malformation to an annotation file's data."""
    if what == 'duplicate-image-id':  # c.jpg takes the id of a.jpg
        data['images'][2]['id'] = 7
        data['annotations'] = data['annotations'][:2]
    elif what == 'category-float':  # JSON 2.0: equal to 2, not an int
        data['annotations'][1]['category_id'] = 2.0
    elif what == 'category-string':
        data['annotations'][1]['category_id'] = '2'
    elif what == 'category-bool':
        data['annotations'][1]['category_id'] = True
    elif what == 'categories-float-ids':
        data['categories'][1]['id'] = 1.0
    elif what == 'image-id-float':
        data['annotations'][1]['image_id'] = 7.0
    elif what == 'missing-category-id':
        del data['annotations'][1]['category_id']
    elif what == 'unknown-image':
        data['annotations'].append(dict(id=9, image_id=99, category_id=0))
    elif what == 'duplicate-annotation':
        data['annotations'].append(dict(id=9, image_id=11, category_id=0))
    elif what == 'file-name-line-break':
        data['images'][0]['file_name'] = 'a\n.jpg'
    return data


@pytest.mark.parametrize('what, expected', [
    ('duplicate-image-id',
     ['images[0]', 'images[2]', 'same id 7', 'train_val2018/c.jpg']),
    ('category-float', ['annotations[1]', 'category_id 2.0', 'integer']),
    ('category-string', ['annotations[1]', "category_id '2'", 'integer']),
    ('category-bool', ['annotations[1]', 'category_id True', 'integer']),
    ('categories-float-ids', ['categories[1]', 'id 1.0', 'integer']),
    ('image-id-float', ['annotations[1]', 'image_id 7.0']),
    ('missing-category-id', ['annotations[1]', "no key 'category_id'"]),
    ('unknown-image', ['annotations[3]', 'image_id 99']),
    ('duplicate-annotation',
     ['image id 11', 'annotations[2]', 'annotations[3]']),
    ('file-name-line-break', ['images[0]', 'line breaks']),
])
def test_inat2018_refuses_malformed_records(tmp_path, what, expected):
    data = _edit(_inat(GOOD_IMAGES, GOOD_ANNOTATIONS), what)
    ann = tmp_path / 'train2018.json'
    ann.write_text(json.dumps(data))
    out = tmp_path / 'list.txt'
    out.write_text('old list\n')
    with pytest.raises(SystemExit) as error:
        load_tool('dataset_converters/inat2018.py').main([str(ann), str(out)])
    message = str(error.value.code)
    assert error.value.code not in (0, None)
    assert message.startswith('error: ') and str(ann) in message
    for text in expected:
        assert text in message, message
    assert out.read_text() == 'old list\n'
    assert sorted(
        p.name for p in tmp_path.iterdir()) == ['list.txt', 'train2018.json']


def test_inat2018_still_converts_a_good_file(tmp_path):
    ann = tmp_path / 'val2018.json'
    ann.write_text(json.dumps(_inat(GOOD_IMAGES, GOOD_ANNOTATIONS)))
    out = tmp_path / 'list.txt'
    load_tool('dataset_converters/inat2018.py').main([str(ann), str(out)])
    assert out.read_text().splitlines() == [
        'train_val2018/a.jpg 2', 'train_val2018/b.jpg 0',
        'train_val2018/c.jpg 1'
    ]


# ------------------------------------- 3. a path that is not a checkpoint


def _not_checkpoints(trained, tmp_path):
    """Paths that are not checkpoints, and what the message must say."""
    archive = tmp_path / 'images.zip'
    shutil.make_archive(
        str(tmp_path / 'images'),
        'zip',
        root_dir=str(trained),
        base_dir='last_checkpoint')
    binary = tmp_path / 'image.pth'
    binary.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(range(64)))
    pickled = tmp_path / 'plain.pkl'
    pickled.write_bytes(pickle.dumps({'weights': [1, 2]}))
    named = _load_text(trained / 'last_checkpoint')
    return {
        'last_checkpoint':
        (trained / 'last_checkpoint',
         ['not a torch checkpoint', 'text file', f'names the file {named!r}']),
        'work-dir':
        (trained, ['is a directory', 'last_checkpoint names', 'epoch_N.pth']),
        'zip-archive':
        (archive, ['not a torch checkpoint', 'zip archive', 'data.pkl']),
        'binary': (binary,
                   ['not a torch checkpoint', 'binary file', '89 50 4e 47']),
        'pickle':
        (pickled,
         ['not a torch checkpoint', 'pickle file',
          'torch.save did not write']),
    }


def _load_text(path):
    return path.read_text().strip()


@pytest.mark.parametrize(
    'kind', ['last_checkpoint', 'work-dir', 'zip-archive', 'binary', 'pickle'])
@pytest.mark.parametrize('how', ['test', 'resume_path', 'load_from'])
def test_not_a_checkpoint_is_named(how, kind, trained, tmp_path):
    path, expected = _not_checkpoints(trained, tmp_path)[kind]
    options = [
        '--work-dir',
        str(tmp_path / 'wd'), '--cfg-options', 'train_cfg.max_epochs=3'
    ]
    argv = [str(CONFIG)] + {
        'test': [str(path)] + options,
        'resume_path': ['--resume', str(path)] + options,
        'load_from': options + [f'load_from={path}'],
    }[how]
    tool = load_tool('test.py' if how == 'test' else 'train.py')
    with pytest.raises((ValueError, IsADirectoryError)) as error:
        tool.main(argv)
    message = str(error.value)
    assert repr(str(path)) in message
    for text in expected:
        assert text in message, message
    assert 'file not found' not in message
    assert not UNSAFE.search(message) and 'Unsupported operand' not in message
    assert 'Expected a checkpoint file' in message or \
        'expected a checkpoint file' in message
    assert not (tmp_path / 'wd').exists()  # refused before the runner


def test_folder_as_config_is_named(tmp_path):
    with pytest.raises(
            IsADirectoryError,
            match=r"config '.*' is a directory, not a file; "
            'expected a config file'):
        load_tool('train.py').main([str(tmp_path)])
    with pytest.raises(
            IsADirectoryError,
            match=r"checkpoint '.*' is a directory.* It holds "
            'epoch_1.pth: pass one of these files'):
        (tmp_path / 'epoch_1.pth').write_bytes(b'')
        check_checkpoint(str(tmp_path), 'checkpoint')


# --------------------------------- 4. and 6. what --resume cannot resume


def _train_argv(trained, tmp_path, *args, options=()):
    return [
        str(CONFIG), '--work-dir',
        str(tmp_path / 'wd'), '--no-validate', *args, '--cfg-options', *options
    ]


def test_resume_with_another_backbone_is_refused_before_loading(
        trained, tmp_path):
    """Another depth: keys listed, not torch's optimizer error."""
    with pytest.raises(ValueError) as error:
        load_tool('train.py').main(
            _train_argv(
                trained,
                tmp_path,
                '--resume',
                str(trained / 'epoch_2.pth'),
                options=['model.backbone.depth=32', 'train_cfg.max_epochs=3']))
    message = str(error.value)
    assert str(trained / 'epoch_2.pth') in message
    assert re.search(
        r'missing in the checkpoint \(60\): '
        r'backbone\.layer1\.3\.conv1\.weight', message), message
    assert "parameter group that doesn't match" not in message
    assert 'load_from' in message  # what to do instead
    assert not list((tmp_path / 'wd').glob('*.pth'))


def test_bare_resume_of_a_resized_checkpoint_is_refused(trained, tmp_path):
    """Bare --resume; the latest checkpoint has a resized, a missing and an
    unexpected tensor."""
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    checkpoint = _load(trained / 'epoch_2.pth')
    state = checkpoint['state_dict']
    state['head.fc.weight'] = torch.zeros(10, 32)
    state['feat_head.extra'] = torch.zeros(3)
    del state['head.fc.bias']
    torch.save(checkpoint, work_dir / 'epoch_2.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    with pytest.raises(ValueError) as error:
        load_tool('train.py').main(
            _train_argv(
                trained,
                tmp_path,
                '--resume',
                options=['train_cfg.max_epochs=3']))
    message = str(error.value)
    assert 'head.fc.weight: (10, 32) in the checkpoint, (10, 64)' in message
    assert re.search(r'missing in the checkpoint \(1\): head\.fc\.bias',
                     message), message
    assert re.search(r'unexpected in the checkpoint \(1\): feat_head\.extra',
                     message), message
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_2.pth']


@pytest.mark.parametrize('bare', [False, True], ids=['path', 'bare'])
def test_resume_past_max_epochs_is_refused(trained, tmp_path, bare):
    work_dir = tmp_path / 'wd'
    shutil.copytree(trained, work_dir)
    resume = ['--resume'] + ([] if bare else [str(work_dir / 'epoch_2.pth')])
    with pytest.raises(ValueError) as error:
        load_tool('train.py').main(
            _train_argv(
                trained, tmp_path, *resume,
                options=['train_cfg.max_epochs=1']))
    message = str(error.value)
    # A bare --resume takes the copied work dir's own checkpoint of the
    # name that last_checkpoint gives (not the original folder's).
    assert repr(str(work_dir / 'epoch_2.pth')) in message
    assert 'is at epoch 2, past train_cfg.max_epochs=1' in message
    assert 'train_cfg.max_epochs above 2' in message
    assert 'leave out --resume' in message
    assert sorted(p.name for p in work_dir.glob('*.pth')) == [
        'epoch_1.pth', 'epoch_2.pth'
    ]


def test_resume_at_the_end_warns_and_a_fitting_resume_trains(
        trained, tmp_path, capsys):
    """At max_epochs: a warning, nothing trained. Before it: trains on."""
    work_dir = tmp_path / 'wd'
    shutil.copytree(trained, work_dir)
    train = load_tool('train.py')
    train.main(
        _train_argv(
            trained, tmp_path, '--resume', options=['train_cfg.max_epochs=2']))
    out = capsys.readouterr().out
    assert re.search(
        r'WARNING - Resume: checkpoint .*epoch_2\.pth is at '
        r'epoch 2, which is train_cfg\.max_epochs=2: training '
        'is complete', out), out[-3000:]
    assert not (work_dir / 'epoch_3.pth').exists()
    train.main(
        _train_argv(
            trained, tmp_path, '--resume', options=['train_cfg.max_epochs=3']))
    assert _load(work_dir / 'epoch_3.pth')['meta']['epoch'] == 3


def _fake_runner(loop):
    model = nn.Linear(2, 1)
    return types.SimpleNamespace(
        model=model,
        train_loop=loop,
        logger=types.SimpleNamespace(warning=lambda message: None))


def test_resume_check_of_iterations_and_of_weights_only_files():
    """Iteration-based loops compare iterations; a checkpoint without
    training state (released weights) is not resumed."""
    from mmlt_hybrid.utils.checkpoints import ResumeCheckHook
    loop = object.__new__(IterBasedTrainLoop)
    loop._max_iters = 100
    runner = _fake_runner(loop)
    state = runner.model.state_dict()
    hook = ResumeCheckHook('iter_120.pth')
    with pytest.raises(
            ValueError,
            match=r'is at iteration 120, past '
            r'train_cfg\.max_iters=100'):
        hook.after_load_checkpoint(
            runner, dict(state_dict=state, meta=dict(epoch=0, iter=120)))
    hook.after_load_checkpoint(
        runner, dict(state_dict=state, meta=dict(epoch=0, iter=60)))
    epochs = object.__new__(EpochBasedTrainLoop)
    epochs._max_epochs = 5
    with pytest.raises(ValueError, match='holds no training state'):
        hook.after_load_checkpoint(
            _fake_runner(epochs), dict(state_dict=state))


# ---------------------------------------------- 5. list files, line by line


def _list_dataset_cfg(tmp_path, text, test_mode=False, **extra):
    """The shipped ImageNet-LT training (or test) dataset over a list."""
    ann = tmp_path / 'meta' / 'list.txt'
    ann.parent.mkdir(exist_ok=True)
    ann.write_text(text)
    cfg = Config.fromfile(str(IMAGENET_LT))
    dataset = (cfg.val_dataloader.dataset if test_mode else
               cfg.train_dataloader.dataset.dataset)  # LongTailedDataset
    leaf = dataset if test_mode else dataset.dataset
    leaf.update(data_root=str(tmp_path), ann_file='meta/list.txt', **extra)
    return dataset, ann


def _ten_classes(extra_lines=()):
    lines = [f'train/c{c}/{k}.JPEG {c}' for c in range(10) for k in range(2)]
    return lines + list(extra_lines)


@pytest.mark.parametrize(
    'lines, lineno, problem', [
        (_ten_classes()[:5] + [''] + _ten_classes()[5:], 6, 'a blank line'),
        (_ten_classes()[:3] + ['train/c1/x.JPEG'] + _ten_classes()[3:], 4,
         'has one field'),
        (_ten_classes() + ['train/c1/x.JPEG 1.0'], 21,
         "has the label '1.0', which is not a non-negative integer"),
        (_ten_classes() + ['train/c1/x.JPEG -1'], 21,
         "has the label '-1', which is not a non-negative integer"),
        (['train/c1/x.JPEG one'] + _ten_classes(), 1, "the label 'one'"),
    ],
    ids=[
        'blank-line', 'one-field', 'float-label', 'negative-label',
        'word-label'
    ])
def test_malformed_list_line_is_named(tmp_path, lines, lineno, problem):
    dataset, ann = _list_dataset_cfg(tmp_path, '\n'.join(lines) + '\n')
    with pytest.raises(ValueError) as error:
        DATASETS.build(dataset)
    message = str(error.value)
    assert f'{ann}:{lineno}:' in message, message
    assert problem in message
    assert 'not enough values to unpack' not in message
    # check_lt_list.py reads the file with the same parser.
    with pytest.raises(ValueError) as checked:
        load_tool('dataset_converters/check_lt_list.py').read_list(str(ann))
    assert str(checked.value) == message


def test_label_beyond_the_classes_is_named(tmp_path):
    """12 in a training list of 10 classes: its line, not 'class 10 has no
    images'; with class names given, also in a test list."""
    lines = _ten_classes(['train/c9/odd.JPEG 12'])
    dataset, ann = _list_dataset_cfg(tmp_path, '\n'.join(lines) + '\n')
    with pytest.raises(ValueError) as error:
        DATASETS.build(dataset)
    message = str(error.value)
    assert str(ann) in message and 'line 21 (label 12)' in message
    assert 'have no line (10, 11)' in message
    assert 'If the set has 10 classes, these labels are beyond them' in \
        message
    assert 'has no images' not in message
    classes = [f'c{c}' for c in range(10)]
    test_set, ann = _list_dataset_cfg(
        tmp_path,
        '\n'.join(lines) + '\n',
        test_mode=True,
        metainfo=dict(classes=classes))
    with pytest.raises(
            ValueError,
            match=re.escape(f'{ann}:21:') +
            ".*label 12, beyond the 10 classes"):
        DATASETS.build(test_set)


def test_good_lists_still_load(tmp_path):
    """Trailing blank lines and CRLF are accepted; a test list may miss a
    class (no class names: its labels are not checked for gaps)."""
    lines = _ten_classes()
    dataset, _ = _list_dataset_cfg(tmp_path, '\r\n'.join(lines) + '\n\n\n')
    built = DATASETS.build(dataset)
    assert built.class_counts == [2] * 10
    test_set, _ = _list_dataset_cfg(
        tmp_path, '\n'.join(lines[2:]) + '\n', test_mode=True)
    built = DATASETS.build(test_set)
    assert len(built) == 18
    assert built.get_data_info(0)['img_path'] == str(tmp_path /
                                                     'train/c1/0.JPEG')
