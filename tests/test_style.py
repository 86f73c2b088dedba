"""The style checks configured in pyproject.toml, run by the test command so
that CI keeps them: ruff (pycodestyle, pyflakes, import order), yapf
(mmpretrain's formatter settings: every file as yapf would write it) and
pylint's duplicate-code check (no block of 6 or more lines twice in the
package, the tools or the tests; configs may repeat their boilerplate)."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ['mmlt_hybrid', 'tools', 'tests', 'configs']


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True)


def test_ruff_finds_nothing():
    result = _run('ruff', 'check', '--no-cache', *SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize('folder', SOURCES)  # one test a folder: balanced
def test_yapf_would_change_nothing(folder):
    result = _run('yapf', '--diff', '--recursive', folder)
    assert result.returncode == 0 and not result.stdout, (
        f'run `yapf -i -r {folder}`:\n' + result.stdout[:3000] + result.stderr)


def test_no_duplicated_code():
    result = _run('pylint', '--recursive=y', '--disable=all',
                  '--enable=duplicate-code', '--min-similarity-lines=6',
                  '--ignore-imports=yes', '--ignore-comments=yes',
                  '--ignore-docstrings=yes', '--score=no', 'mmlt_hybrid',
                  'tools', 'tests')
    assert result.returncode == 0, result.stdout + result.stderr
