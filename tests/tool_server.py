"""A fork server for the tests' tool runs (``tool_runner.run``).

Started once per test process, it imports torch, mmengine, mmpretrain and
mmlt_hybrid (about 5 s of CPU a fresh interpreter pays again for every tool
it runs), then serves one request at a time on stdin/stdout: a JSON line
``{"argv", "env", "cwd", "stdout", "stderr"}`` is answered with the pid of a
forked child that runs ``argv[1]`` (a ``.py`` script) as ``__main__``, the
way ``python script.py args`` would, then with its exit status (negative:
the signal that ended it).

What the child resets to look like a fresh interpreter: the environment
(replaced by the request's), the working directory, ``sys.argv``,
``sys.path[0]`` (the script's folder), standard streams (stdin from
/dev/null, stdout and stderr into the request's files), the random states
(Python's, NumPy's and torch's drawn from the OS, as a fresh process draws
them: the fork would otherwise repeat the server's) and its own
process group (so the client can kill it with its workers). What it cannot
reset, so the client runs such commands as real processes instead: settings
read when the interpreter or a native library starts (``PYTHON*``,
``OMP_*``, ``MKL_*``... and the hash seed).
"""
import atexit
import json
import os
import random
import runpy
import sys
import threading
import traceback


def _preload() -> None:
    import mmengine.runner  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401

    import mmlt_hybrid  # noqa: F401


def _run_child(request: dict) -> None:
    """Run the request's script in this (forked) process; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        os.chdir(request['cwd'])
        os.environ.clear()
        os.environ.update(request['env'])
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request['stdout'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            opened = os.open(path, flags, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        random.seed()
        import numpy as np
        import torch
        np.random.seed()
        torch.seed()
        script = request['argv'][1]
        sys.argv = [script] + request['argv'][2:]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        code = 0
        try:
            runpy.run_path(script, run_name='__main__')
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: B036  (as the interpreter reports)
            traceback.print_exc()
            code = 1
        # What the interpreter does at exit: join the non-daemon threads,
        # run the atexit functions, flush.
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: B036
        traceback.print_exc()
    finally:
        os._exit(code & 0xff)


def _write(fd: int, obj) -> None:
    os.write(fd, (json.dumps(obj) + '\n').encode())


def main() -> None:
    _preload()
    reply = os.dup(1)  # the protocol's own fds: fd 0/1 are the child's
    requests = os.fdopen(os.dup(0), 'r')
    _write(reply, 'ready')
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            os.close(reply)
            _run_child(request)
        _write(reply, pid)
        _, status = os.waitpid(pid, 0)
        _write(reply, os.waitstatus_to_exitcode(status))


if __name__ == '__main__':
    main()
