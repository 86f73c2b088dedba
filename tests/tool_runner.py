"""Helpers for the tests that run tools/*.py and tools/*.sh as processes."""
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
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


#: Environment variables read when an interpreter or a native library
#: starts: a command that changes one runs as a real process.
STARTUP_ENV_PREFIXES = ('PYTHON', 'OMP_', 'MKL_', 'KMP_', 'GOMP_', 'LD_',
                        'MALLOC_', 'CUDA_', 'TORCH_', 'NCCL_')
#: Set to 1 to run every tool as a real process (no fork server).
FRESH_PROCESSES_ENV = 'MMLT_TESTS_FRESH_PROCESSES'


def _tool_env(env: Optional[Dict[str, str]]) -> Dict[str, str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault('PYTHONWARNINGS', 'ignore')
    # One compute thread per process: on a small shared machine spinning
    # OpenMP threads of concurrent processes slow each other down many-fold.
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.setdefault('MKL_NUM_THREADS', '1')
    return full_env


class _ToolServer:
    """The client of ``tool_server.py``: one server per test process,
    started at its first use, one request at a time."""

    def __init__(self) -> None:
        self.env = _tool_env(None)
        self.proc = subprocess.Popen(
            [sys.executable,
             str(Path(__file__).with_name('tool_server.py'))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO_ROOT,
            env=self.env,
            bufsize=0)
        self._buffer = b''
        if self._read(timeout=300) != 'ready':
            raise RuntimeError('the tool server did not start')
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def keeps_start_up(self, env: Dict[str, str]) -> bool:
        """Whether ``env`` has the server's value of every setting read at
        start-up (:data:`STARTUP_ENV_PREFIXES`), so that a forked child
        runs as a fresh process with ``env`` would."""
        keys = set(env) | set(self.env)
        return not any(
            key.startswith(STARTUP_ENV_PREFIXES)
            and env.get(key) != self.env.get(key) for key in keys)

    def _read(self, timeout: float):
        deadline = time.monotonic() + timeout
        while b'\n' not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [],
                                              left)[0]:
                raise TimeoutError
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError('the tool server exited')
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b'\n', 1)
        return json.loads(line)

    def run(self, args: List[str], env: Dict[str, str],
            timeout: float) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, 'stdout'), Path(tmp, 'stderr')
            request = dict(
                argv=args,
                env=env,
                cwd=str(REPO_ROOT),
                stdout=str(out),
                stderr=str(err))
            self.proc.stdin.write((json.dumps(request) + '\n').encode())
            pid = self._read(timeout=60)
            try:
                code = self._read(timeout=timeout)
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
                self._read(timeout=60)
                raise subprocess.TimeoutExpired(
                    args, timeout, output=_text(out), stderr=_text(err))
            return subprocess.CompletedProcess(args, code, _text(out),
                                               _text(err))


def _text(path: Path) -> str:
    return path.read_bytes().decode('utf-8', errors='replace') \
        if path.exists() else ''


_server: Optional[_ToolServer] = None


def run(args: Sequence,
        env: Optional[Dict[str, str]] = None,
        timeout: int = 300,
        check: bool = True,
        fresh: bool = False) -> subprocess.CompletedProcess:
    """Run a command from the repository root and return its result.

    ``python tools/<script>.py ...`` runs in a child forked from a server
    that has imported the heavy packages once (``tool_server.py``), unless
    ``fresh`` asks for a real process, ``env`` changes a start-up setting
    (:data:`STARTUP_ENV_PREFIXES`) or ``MMLT_TESTS_FRESH_PROCESSES=1``;
    every other command runs as a real process.

    Args:
        args (Sequence): The command; items are converted with ``str``.
        env (dict, optional): Extra environment variables.
        timeout (int): Seconds before the command is killed.
        check (bool): Fail the test (showing the output) on a non-zero exit.
        fresh (bool): Run it as a real process, for tests whose subject is
            what separate interpreters do (e.g. a resume in a new process
            equal to an uninterrupted run).

    Returns:
        subprocess.CompletedProcess: With text ``stdout`` and ``stderr``.
    """
    global _server
    args = [str(a) for a in args]
    full_env = _tool_env(env)
    python_script = len(args) > 1 and args[0] == sys.executable and \
        args[1].endswith('.py')
    fresh = fresh or not python_script or os.environ.get(
        FRESH_PROCESSES_ENV) == '1'
    if not fresh:  # the server starts at the first command it can run
        if _server is None or not _server.alive():
            _server = _ToolServer()
        fresh = not _server.keeps_start_up(full_env)
    if fresh:
        result = subprocess.run(
            args,
            cwd=REPO_ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout)
    else:
        result = _server.run(args, full_env, timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f'command failed ({result.returncode}): {" ".join(args)}'
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
