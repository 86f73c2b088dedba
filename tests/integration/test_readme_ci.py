""".ci/run runs README.md's quick-start lines and fails when they fail."""
import re
import shutil
import sys

from tool_runner import REPO_ROOT, run

CI_RUN = REPO_ROOT / '.ci' / 'run'


def _readme_quickstart_lines(text):
    """The code lines between the markers, parsed here independently."""
    block = text.split('<!-- quickstart:begin -->', 1)[1]
    block = block.split('<!-- quickstart:end -->', 1)[0]
    code = re.search(r'```[a-z]*\n(.*?)```', block, re.S).group(1)
    return [line for line in code.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_quick_start():
    readme = (REPO_ROOT / 'README.md').read_text()
    expected = _readme_quickstart_lines(readme)
    printed = run(['bash', CI_RUN, '--print']).stdout.splitlines()
    assert printed == expected
    install, tests = printed
    # Command 1 installs the way the Install section says.
    assert 'python3 -m venv .venv' in install
    assert '.venv/bin/pip install -e ".[tests]"' in install
    assert '.venv/bin/pip install -e ".[tests]"' in readme.split(
        '## Quick start')[0]
    assert tests == '.venv/bin/python -m pytest -q'


def _fake_repo(tmp_path, commands):
    (tmp_path / '.ci').mkdir(parents=True)
    shutil.copy(CI_RUN, tmp_path / '.ci' / 'run')
    lines = '\n'.join(commands)
    (tmp_path / 'README.md').write_text(
        f'# x\n\n<!-- quickstart:begin -->\n```bash\n{lines}\n```\n'
        '<!-- quickstart:end -->\n\n```bash\nnot a command\n```\n')
    return tmp_path / '.ci' / 'run'


def test_ci_fails_on_failures_and_on_no_tests(tmp_path):
    python = sys.executable
    ok_tests = tmp_path / 'ok'
    ok_tests.mkdir()
    (ok_tests / 'test_one.py').write_text('def test_one():\n    pass\n')
    empty = tmp_path / 'empty'
    empty.mkdir()
    cases = {
        # (first command, second command): expected exit status
        ('true', f'{python} -m pytest -q -p no:cacheprovider {ok_tests}'):
        0,
        ('false', 'true'):
        1,
        ('true', 'exit 3'):
        3,
        ('true', f'{python} -m pytest -q -p no:cacheprovider {empty}'):
        1,
    }
    for index, ((first, second), status) in enumerate(cases.items()):
        ci = _fake_repo(tmp_path / f'repo{index}', [first, second])
        result = run(['bash', ci], check=False)
        assert result.returncode == status, (first, second, result.stderr)
        if 'empty' in second:
            assert 'collected no test (exit 5)' in result.stderr


def test_ci_needs_exactly_two_commands(tmp_path):
    ci = _fake_repo(tmp_path / 'three',
                    ['# a comment', 'true', 'true', 'true'])
    result = run(['bash', ci, '--print'], check=False)
    assert result.returncode == 1
    assert 'expected 2 quick-start commands' in result.stderr
    ci = _fake_repo(tmp_path / 'continued',
                    ['echo one \\', '  two', '', 'echo three'])
    assert run(['bash', ci, '--print'
                ]).stdout.splitlines() == ['echo one two', 'echo three']
