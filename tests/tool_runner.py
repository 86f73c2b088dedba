"""Helpers for the tests that run tools/*.py and tools/*.sh as processes."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / 'tools'
#: A stock mmpretrain config (ResNet-18, CIFAR-10) on an image folder.
TINY_CONFIG = REPO_ROOT / 'tests' / 'configs' / 'tiny_resnet18_cifar10.py'


def load_tool(path: str):
    """Import a script of ``tools/`` as a module, to call its functions.

    Args:
        path (str): The script, relative to ``tools/``, e.g. ``'train.py'``
            or ``'analysis/plot_long_tail.py'``.

    Returns:
        module: The freshly executed script (``__name__`` is not
        ``'__main__'``, so its ``main()`` does not run).
    """
    name = 'mmlt_tool_' + path[:-len('.py')].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, TOOLS / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_overrides(folder: Path) -> Dict[str, object]:
    """Config changes that shrink the tiny config to a test run.

    The stock ResNet-18 keeps its depth (18) and structure; its widths shrink
    from 64..512 to 16..128 channels so a CPU epoch takes a second. Logging
    records every iteration's own loss (interval 1, window 1).

    Args:
        folder (Path): A generated image folder with ``train``/``test``.

    Returns:
        dict: Dotted config keys and their values.
    """
    return {
        'train_dataloader.dataset.data_root': str(folder / 'train'),
        'val_dataloader.dataset.data_root': str(folder / 'test'),
        'test_dataloader.dataset.data_root': str(folder / 'test'),
        'train_dataloader.num_workers': 1,
        'val_dataloader.num_workers': 0,
        'test_dataloader.num_workers': 0,
        'model.backbone.stem_channels': 16,
        'model.backbone.base_channels': 16,
        'model.head.in_channels': 128,
        'randomness.seed': 0,
        'default_hooks.logger.interval': 1,
        'log_processor.window_size': 1,
    }


def tiny_cfg_options(folder: Path, **extra) -> List[str]:
    """:func:`tiny_overrides` as ``--cfg-options`` values.

    Args:
        folder (Path): A generated image folder with ``train``/``test``.
        **extra: Further options; ``__`` in a name stands for a dot.

    Returns:
        list[str]: ``key=value`` strings.
    """
    options = tiny_overrides(folder)
    for key, value in extra.items():
        options[key.replace('__', '.')] = value
    return [f'{key}={value}' for key, value in options.items()]


def run(args: Sequence,
        env: Optional[Dict[str, str]] = None,
        timeout: int = 300,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a command from the repository root and return its result.

    Args:
        args (Sequence): The command; items are converted with ``str``.
        env (dict, optional): Extra environment variables.
        timeout (int): Seconds before the command is killed.
        check (bool): Fail the test (showing the output) on a non-zero exit.

    Returns:
        subprocess.CompletedProcess: With text ``stdout`` and ``stderr``.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault('PYTHONWARNINGS', 'ignore')
    # One compute thread per process: on a small shared machine spinning
    # OpenMP threads of concurrent processes slow each other down many-fold.
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.setdefault('MKL_NUM_THREADS', '1')
    result = subprocess.run([str(a) for a in args],
                            cwd=REPO_ROOT,
                            env=full_env,
                            capture_output=True,
                            text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f'command failed ({result.returncode}): {" ".join(map(str, args))}'
            f'\n--- stdout (tail) ---\n{result.stdout[-4000:]}'
            f'\n--- stderr (tail) ---\n{result.stderr[-6000:]}')
    return result


def python_tool(name: str, *args) -> List:
    """``[python, tools/<name>, *args]`` with this interpreter."""
    return [sys.executable, TOOLS / name, *args]


def scalars(work_dir: Path) -> List[dict]:
    """All records of every ``vis_data/scalars.json`` under a work dir.

    Runs write into ``<work_dir>/<timestamp>/vis_data``; records are returned
    in the order of the timestamps, then of the lines.
    """
    records = []
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
