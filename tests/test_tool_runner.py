"""The test harness itself: tools run by the fork server behave as in a
fresh interpreter, and the scheduler's groups of tests that share a
module-scoped fixture."""
import sys
import textwrap

import pytest
from conftest import module_fixture_users
from tool_runner import REPO_ROOT, run

PROBE = '''\
import os, random, sys
import numpy as np
import torch
print('argv', sys.argv[1:])
print('cwd', os.getcwd())
print('path0', sys.path[0])
print('main', __name__, os.path.basename(__file__))
print('env', os.environ.get('PROBE_VALUE'))
print('torch', torch.rand(1).item(), torch.get_num_threads())
print('numpy', np.random.randint(1 << 30), 'random', random.random())
print('to stderr', file=sys.stderr)
sys.exit(int(sys.argv[1]))
'''


@pytest.fixture
def probe(tmp_path):
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    return script


def _lines(result):
    return dict(
        line.split(' ', 1) for line in result.stdout.splitlines() if line)


@pytest.mark.parametrize('code', [0, 3])
def test_forked_tool_behaves_as_a_fresh_interpreter(probe, code):
    """Arguments, working dir, sys.path[0], __main__, environment, torch's
    thread count, exit status and both streams are those of ``python
    probe.py`` in a real process; torch, NumPy and Python draw fresh random
    states as a new process does (a plain fork would repeat the server's)."""
    args = [sys.executable, probe, code, 'x y']
    env = dict(PROBE_VALUE='42')
    forked = run(args, env=env, check=False)
    again = run(args, env=env, check=False)
    fresh = run(args, env=env, check=False, fresh=True)
    for result in (forked, fresh):
        assert result.returncode == code
        assert result.stderr.strip().endswith('to stderr')
    seen, want = _lines(forked), _lines(fresh)
    for key in ('argv', 'cwd', 'path0', 'main', 'env'):
        assert seen[key] == want[key], key
    assert seen['argv'] == f"['{code}', 'x y']"
    assert seen['cwd'] == str(REPO_ROOT)
    assert seen['path0'] == str(probe.parent)
    assert seen['main'] == '__main__ probe.py'
    assert seen['env'] == '42'
    assert seen['torch'].split()[1] == '1'  # OMP_NUM_THREADS=1 of run()
    assert want['torch'].split()[1] == '1'
    for key in ('torch', 'numpy'):
        assert seen[key] != _lines(again)[key], key


def test_uncaught_exception_and_timeout(tmp_path):
    script = tmp_path / 'fail.py'
    script.write_text('raise ValueError("bad value 7")\n')
    result = run([sys.executable, script], check=False)
    assert result.returncode == 1
    assert 'ValueError: bad value 7' in result.stderr
    slow = tmp_path / 'slow.py'
    slow.write_text('import time\ntime.sleep(60)\n')
    with pytest.raises(Exception, match='timed out after 1 seconds'):
        run([sys.executable, slow], timeout=1)
    # the server still serves after a killed child
    assert run([sys.executable, script], check=False).returncode == 1


def test_groups_of_tests_sharing_module_fixtures(tmp_path):
    module = tmp_path / 'test_x.py'
    module.write_text(
        textwrap.dedent('''\
        import pytest

        @pytest.fixture(scope='module')
        def trained():
            pass

        @pytest.fixture
        def from_trained(trained):
            pass

        @pytest.fixture(autouse=True, scope='module')
        def one_thread():
            pass

        @pytest.fixture(scope='session')
        def folder():
            pass

        def test_a(trained):
            pass

        def test_b(from_trained, tmp_path):
            pass

        @pytest.mark.parametrize('x', [1, 2])
        def test_c(folder, x):
            pass

        def test_d():
            pass
        '''))
    assert module_fixture_users(module) == {'test_a', 'test_b'}
