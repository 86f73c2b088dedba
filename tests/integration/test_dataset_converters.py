"""tools/dataset_converters: the iNaturalist 2018 converter and the list check.

Both tools run as processes, on files generated in the official layouts:
the iNaturalist 2018 annotation JSON (``train2018.json`` / ``val2018.json``)
and the ``path label`` list files of the ImageNet-LT / Places-LT / iNaturalist
releases that the configs read.
"""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from tool_runner import python_tool, run

INAT = 'dataset_converters/inat2018.py'
CHECK = 'dataset_converters/check_lt_list.py'


def _write_inat(path, images, annotations, num_classes=3, drop=None):
    """Write an annotation file in the layout of the iNaturalist 2018 release.

    Args:
        path (Path): The JSON file to write.
        images (list[tuple]): ``(id, file_name)`` of every image.
        annotations (list[tuple]): ``(image_id, category_id)`` pairs.
        num_classes (int): Categories 0 .. num_classes - 1.
        drop (str, optional): A top-level key to leave out.
    """
    data = dict(
        info=dict(year=2018, version='1.0', description='iNat2018'),
        licenses=[dict(id=0, name='CC BY 4.0', url='')],
        images=[
            dict(
                id=i,
                file_name=name,
                width=800,
                height=600,
                license=0,
                rights_holder='someone') for i, name in images
        ],
        annotations=[
            dict(id=k, image_id=i, category_id=c)
            for k, (i, c) in enumerate(annotations)
        ],
        categories=[
            dict(
                id=c,
                name=f'species {c}',
                supercategory='Plantae',
                kingdom='Plantae',
                phylum='P',
                order='O',
                family='F',
                genus='G',
                **{'class': 'C'}) for c in range(num_classes)
        ])
    if drop is not None:
        del data[drop]
    path.write_text(json.dumps(data))
    return path


# Five images of three classes; the image ids are not in file order and the
# annotations are in yet another order: the list keeps the image order.
IMAGES = [(7, 'train_val2018/Plantae/2/b.jpg'),
          (3, 'train_val2018/Aves/0/a.jpg'),
          (11, 'train_val2018/Insecta/1/c.jpg'),
          (5, 'train_val2018/Aves/0/d.jpg'),
          (1, 'train_val2018/Plantae/2/e.jpg')]
ANNOTATIONS = [(1, 2), (11, 1), (3, 0), (7, 2), (5, 0)]
EXPECTED_LINES = [
    'train_val2018/Plantae/2/b.jpg 2', 'train_val2018/Aves/0/a.jpg 0',
    'train_val2018/Insecta/1/c.jpg 1', 'train_val2018/Aves/0/d.jpg 0',
    'train_val2018/Plantae/2/e.jpg 2'
]


@pytest.mark.parametrize('name, split, release_images',
                         [('train2018.json', 'train', '437,513'),
                          ('val2018.json', 'val', '24,426')])
def test_inat2018_writes_one_line_per_image_in_image_order(
        tmp_path, name, split, release_images):
    ann = _write_inat(tmp_path / name, IMAGES, ANNOTATIONS)
    out = tmp_path / 'meta' / 'iNaturalist18_train.txt'
    result = run(python_tool(INAT, ann, out))
    assert out.read_text() == ''.join(f'{line}\n' for line in EXPECTED_LINES)
    assert '5 images' in result.stdout and '3 classes' in result.stdout
    # Not the release's numbers: a warning naming the split and its size.
    warning = result.stderr
    assert 'Warning' in warning and f'{split} split' in warning
    assert release_images in warning and '8,142' in warning
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    # Readable like any new file (the umask applies), not private.
    (tmp_path / 'reference').touch()
    assert out.stat().st_mode == (tmp_path / 'reference').stat().st_mode


def test_inat2018_release_sized_val_file_gives_no_warning(tmp_path):
    """A file with the val split's counts is recognised by them, silently."""
    num_images, num_classes = 24426, 8142
    images = [(i, f'train_val2018/Plantae/{i % num_classes}/{i}.jpg')
              for i in range(num_images)]
    ann = _write_inat(
        tmp_path / 'annotations.json',
        images, [(i, i % num_classes) for i in range(num_images)],
        num_classes=num_classes)
    out = tmp_path / 'val.txt'
    result = run(python_tool(INAT, ann, out))
    assert result.stderr == ''
    assert '24426 images' in result.stdout
    assert '8142 classes' in result.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == num_images
    assert lines[8143] == 'train_val2018/Plantae/1/8143.jpg 1'


@pytest.mark.parametrize(
    'case, expected',
    [
        # A top-level key of the release is missing.
        (dict(drop='images'), ["'images'", "'annotations'", "'categories'"]),
        (dict(drop='annotations'), ["'annotations'"]),
        (dict(drop='categories'), ["'categories'"]),
        # An entry lacks a key.
        (dict(bad_image=dict(id=11, width=800, height=600)),
         ['images[2]', "'file_name'"]),
        # An image without an annotation.
        (dict(annotations=ANNOTATIONS[:3] + ANNOTATIONS[4:]),
         ['image id 7', 'train_val2018/Plantae/2/b.jpg', 'no annotation']),
        # An annotation of an image that is not in 'images'.
        (dict(annotations=ANNOTATIONS + [(99, 1)]),
         ['annotations[5]', 'image_id 99']),
        # Two annotations of one image.
        (dict(annotations=ANNOTATIONS + [(5, 1)]),
         ['image id 5', 'annotations[4]', 'annotations[5]']),
        # A category that is not in 'categories'.
        (dict(annotations=ANNOTATIONS[:4] + [(5, 3)]),
         ['annotations[4]', 'category_id 3', "'categories'"]),
    ],
    ids=[
        'no-images', 'no-annotations', 'no-categories', 'no-file-name',
        'unannotated-image', 'unknown-image', 'duplicate-annotation',
        'unknown-category'
    ])
def test_inat2018_bad_annotation_file_fails_and_keeps_the_old_list(
        tmp_path, case, expected):
    ann = _write_inat(
        tmp_path / 'train2018.json',
        IMAGES,
        case.get('annotations', ANNOTATIONS),
        drop=case.get('drop'))
    if 'bad_image' in case:  # images[2] without 'file_name'
        data = json.loads(ann.read_text())
        data['images'][2] = case['bad_image']
        ann.write_text(json.dumps(data))
    out = tmp_path / 'meta' / 'list.txt'
    out.parent.mkdir()
    out.write_text('old list\n')
    result = run(python_tool(INAT, ann, out), check=False)
    assert result.returncode != 0
    assert str(ann) in result.stderr
    for text in expected:
        assert text in result.stderr
    # Nothing written: the old list is intact and no temporary file is left.
    assert out.read_text() == 'old list\n'
    assert [p.name for p in out.parent.iterdir()] == ['list.txt']


def test_inat2018_unreadable_json_fails(tmp_path):
    ann = tmp_path / 'train2018.json'
    ann.write_text('{"images": [')
    result = run(python_tool(INAT, ann, tmp_path / 'out.txt'), check=False)
    assert result.returncode != 0
    assert str(ann) in result.stderr and 'JSON' in result.stderr
    assert not (tmp_path / 'out.txt').exists()


@pytest.mark.parametrize('tool', [INAT, CHECK])
def test_help_imports_only_the_standard_library(tool):
    """``--help`` answers at once: no torch / mmengine import at module level.
    """
    command = python_tool(tool, '--help')
    command[1:1] = ['-X', 'importtime']
    result = run(command)
    assert 'usage:' in result.stdout
    imported = {
        line.rsplit('|', 1)[-1].strip().split('.')[0]
        for line in result.stderr.splitlines()
    }
    assert not imported & {
        'torch', 'numpy', 'mmengine', 'mmpretrain', 'mmlt_hybrid'
    }


# Counts 101 / 100 / 20 / 20 / 19 / 5 around the metric's thresholds
# (many-shot: more than 100 training images, few-shot: fewer than 20,
# medium-shot: the rest): many {0}, medium {1, 2, 3}, few {4, 5};
# IF = 101 / 5 = 20.2.
COUNTS = [101, 100, 20, 20, 19, 5]


def _write_list(root, counts, missing=()):
    """An ImageNet-LT style list under ``root``, labels interleaved.

    Every listed file exists (empty) except the indices in ``missing``.
    """
    entries = []
    for k in range(max(counts)):
        for label, count in enumerate(counts):
            if k < count:
                entries.append(
                    (f'train/n{label:08d}/n{label:08d}_{k}.JPEG', label))
    for index, (path, _) in enumerate(entries):
        if index not in missing:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).touch()
    ann = root / 'meta' / 'ImageNet_LT_train.txt'
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(''.join(f'{p} {label}\n' for p, label in entries))
    return ann, [p for p, _ in entries]


# A list with labels 0, 2, 3 (none of label 1) of 50 / 20 / 5 images, 12 of
# its files missing: IF 10; with thresholds 100 / 20: medium {0, 2}, few
# {1, 3} (the empty label counts as a class of 0 images, as in the metric).
BROKEN_COUNTS = [50, 0, 20, 5]
MISSING = list(range(3, 75, 6))


@pytest.fixture(scope='module')
def checked(tmp_path_factory):
    """The two checker runs that reach the statistics, started together.

    Each imports torch (a few seconds); running them at once keeps the file
    fast. Returns the results of the clean list (``COUNTS``) and the broken
    one, and the broken list's paths.
    """
    clean, broken = (tmp_path_factory.mktemp(n) for n in ('clean', 'broken'))
    clean_ann, _ = _write_list(clean, COUNTS)
    broken_ann, paths = _write_list(broken, BROKEN_COUNTS, missing=MISSING)
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(run, python_tool(CHECK, ann, root), check=False)
            for ann, root in ((clean_ann, clean), (broken_ann, broken))
        ]
    return dict(clean=jobs[0].result(), broken=jobs[1].result(), paths=paths)


def test_check_lt_list_reports_counts_and_shot_groups(checked):
    result = checked['clean']
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f'{sum(COUNTS)} images, all found' in out
    assert 'classes: 6' in out
    assert 'largest class: label 0 (101 images)' in out
    assert 'smallest class: label 5 (5 images)' in out
    assert 'imbalance factor: 20.2\n' in out
    assert 'many-shot (more than 100 images): 1 classes' in out
    assert 'medium-shot (20 to 100 images): 3 classes' in out
    assert 'few-shot (fewer than 20 images): 2 classes' in out


def test_check_lt_list_reports_missing_files_and_empty_labels(checked):
    result, paths = checked['broken'], checked['paths']
    assert result.returncode != 0
    out = result.stdout
    assert '12 of 75 listed files are missing' in out
    for index in MISSING[:10]:
        assert f'  {paths[index]}\n' in out
    for index in MISSING[10:]:
        assert paths[index] not in out
    assert 'labels without images (1): label 1;' in out
    assert 'missing files and labels without images' in result.stderr
    assert 'classes: 4' in out
    assert 'largest class: label 0 (50 images)' in out
    # The smallest class with images; the empty one is reported above.
    assert 'smallest class: label 3 (5 images)' in out
    assert 'imbalance factor: 10\n' in out
    assert 'many-shot (more than 100 images): 0 classes' in out
    assert 'medium-shot (20 to 100 images): 2 classes' in out
    assert 'few-shot (fewer than 20 images): 2 classes' in out


@pytest.mark.parametrize(
    'text, line', [('a.jpg 0\nb.jpg\n', 2),
                   ('a.jpg 0\nb.jpg 1\nc.jpg one\n', 3), ('a.jpg -1\n', 1),
                   ('a.jpg 0\n\nb.jpg 1\n', 2), ('a.jpg 0\n 1\n', 2)],
    ids=['no-label', 'word-label', 'negative-label', 'blank-line', 'no-path'])
def test_check_lt_list_malformed_line_names_its_number(tmp_path, text, line):
    for name in ('a.jpg', 'b.jpg', 'c.jpg'):
        (tmp_path / name).touch()
    ann = tmp_path / 'list.txt'
    ann.write_text(text)
    result = run(python_tool(CHECK, ann, tmp_path), check=False)
    assert result.returncode != 0
    assert f'{ann}:{line}:' in result.stderr
    assert 'path label' in result.stderr


@pytest.mark.parametrize('case', ['empty-list', 'no-root'])
def test_check_lt_list_empty_list_or_missing_root_fails(tmp_path, case):
    ann = tmp_path / 'list.txt'
    ann.write_text('' if case == 'empty-list' else 'a.jpg 0\n')
    root = tmp_path if case == 'empty-list' else tmp_path / 'nowhere'
    result = run(python_tool(CHECK, ann, root), check=False)
    assert result.returncode != 0
    assert str(ann if case == 'empty-list' else root) in result.stderr
