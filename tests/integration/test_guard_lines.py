"""tools/analysis/guard_lines.py on a module whose counts are known by hand."""
import textwrap

from tool_runner import load_tool, python_tool, run

SOURCE = textwrap.dedent('''\
    """Module docstring,
    two lines."""
    import os  # code 1


    def check_positive(x):  # code 2, guard (check_ helper)
        """Docstring: not code."""
        if x <= 0:  # code 3, guard
            raise ValueError(  # code 4, guard
                f'x={x}')  # code 5, guard


    def f(x):  # code 6
        # a comment line: not code
        if x:  # code 7 (the if has an else)
            raise KeyError(x)  # code 8, guard
        else:  # code 9
            x = 1  # code 10
        if x > 3:  # code 11 (the body is not only a raise)
            x = 2  # code 12
            raise RuntimeError  # code 13, guard
        assert (x  # code 14, guard
                > 0)  # code 15, guard
        return os.sep  # code 16
    ''')


def test_counts_match_the_hand_count():
    # Guards: the check_ helper (lines 2-5), the raise in the if with an
    # else (8), the raise after an assignment (13), the assert (14-15).
    assert load_tool('analysis/guard_lines.py').count(SOURCE) == (16, 8)


def test_check_fails_over_the_bounds(tmp_path):
    package = tmp_path / 'pkg'
    package.mkdir()
    (package / 'mod.py').write_text(SOURCE)
    # 8 / 16 = 50 %: over 15 % in total; the module has 16 code lines.
    result = run(
        python_tool('analysis/guard_lines.py', package, '--check'),
        check=False)
    assert result.returncode == 1
    assert '| total | 16 | 8 | 50.0% |' in result.stdout
    # A module under --min-lines is not bounded on its own, the total is.
    result = run(
        python_tool('analysis/guard_lines.py', package, '--check',
                    '--max-total', '0.5'),
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run(
        python_tool('analysis/guard_lines.py', package, '--check',
                    '--max-total', '0.5', '--min-lines', '10'),
        check=False)
    assert result.returncode == 1 and '(over)' in result.stdout
