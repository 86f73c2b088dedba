"""Share of guard lines per module: how much of the code is checks.

A guard line is a physical line of (messages included):

- a ``raise`` statement;
- the condition of an ``if`` whose body is nothing but a ``raise`` (and
  that has no ``else``);
- an ``assert`` statement;
- a ``check_*`` / ``_check_*`` function (its whole body, docstring not
  counted).

Code lines are the physical lines holding code: blank lines, comment-only
lines and docstrings are not counted. Lines are counted once even when two
rules match them.

Prints a table of every module below the given folders, worst first, and
the total. With ``--check`` the exit status is 1 when the total share is
above ``--max-total`` or a module of at least ``--min-lines`` code lines is
above ``--max-module`` (the bounds of the lean-modules issue: 15 %, 25 %,
40 lines).

Example::

    python tools/analysis/guard_lines.py mmlt_hybrid --check
"""
import argparse
import ast
import io
import os.path as osp
import re
import sys
import tokenize
from pathlib import Path
from typing import List, Set, Tuple

_CHECK_NAME = re.compile(r'^_?check')
_NOT_CODE = {
    tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
    tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING
}


def _span(node: ast.AST) -> Set[int]:
    return set(range(node.lineno, node.end_lineno + 1))


def _docstring_lines(tree: ast.Module) -> Set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(
                    first.value, ast.Constant) and isinstance(
                        first.value.value, str):
                lines |= _span(first)
    return lines


def count(source: str) -> Tuple[int, int]:
    """Code lines and guard lines of one module's source.

    Args:
        source (str): Python source.

    Returns:
        tuple[int, int]: (code lines, guard lines).
    """
    tree = ast.parse(source)
    docstrings = _docstring_lines(tree)
    code = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            code |= set(range(token.start[0], token.end[0] + 1))
    code -= docstrings
    guards = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.Assert)):
            guards |= _span(node)
        elif isinstance(node, ast.If) and not node.orelse and all(
                isinstance(stmt, ast.Raise) for stmt in node.body):
            guards |= set(range(node.lineno, node.body[0].lineno))
        elif isinstance(
                node,
            (ast.FunctionDef, ast.AsyncFunctionDef)) and _CHECK_NAME.match(
                node.name):
            guards |= _span(node)
    return len(code), len(guards & code)


def measure(folders: List[str]) -> List[Tuple[str, int, int]]:
    """(path, code lines, guard lines) of every ``*.py`` below ``folders``."""
    rows = []
    for folder in folders:
        for path in sorted(Path(folder).rglob('*.py')):
            rows.append((str(path), *count(path.read_text())))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folders', nargs='+', help='package folders')
    parser.add_argument(
        '--check',
        action='store_true',
        help='exit 1 when a bound below is exceeded')
    parser.add_argument('--max-total', type=float, default=0.15)
    parser.add_argument('--max-module', type=float, default=0.25)
    parser.add_argument(
        '--min-lines',
        type=int,
        default=40,
        help='modules with fewer code lines are not bounded')
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not osp.isdir(folder):
            parser.error(f'{folder!r} is not a folder')
    rows = measure(args.folders)
    code = sum(r[1] for r in rows)
    guards = sum(r[2] for r in rows)
    total = guards / code if code else 0.0
    over = []
    print('| module | code lines | guard lines | share |\n|---|---|---|---|')
    for path, lines, guard in sorted(
            rows, key=lambda r: -(r[2] / r[1] if r[1] else 0)):
        share = guard / lines if lines else 0.0
        flag = ''
        if lines >= args.min_lines and share > args.max_module:
            flag = ' (over)'
            over.append(path)
        print(f'| {path} | {lines} | {guard} | {share:.1%}{flag} |')
    print(f'| total | {code} | {guards} | {total:.1%} |')
    if args.check and (over or total > args.max_total):
        print(
            f'over the bounds: total {total:.1%} (max '
            f'{args.max_total:.0%}); modules over {args.max_module:.0%}: '
            f'{len(over)}',
            file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
