"""The command line of python -m numpylstm.exercises {list, start, check, hint, solution}: see docs/exercises.md.

Exit status: 0 when everything asked for is right, 1 for a wrong (or unfinished, or broken) answer and for a
refused ``start``, 2 for a usage error (unknown exercise, no such file).
"""

from __future__ import annotations

import argparse
import inspect
import re
import shlex
import sys
from pathlib import Path

from ..train import pipe_safe_stdout
from . import blanks as bl
from .catalog import BY_NAME, EXERCISES, check_file

DEFAULT_DIR = "exercises"
BLANK_RE = re.compile(r"NotImplementedError\(['\"]blank (\d+) of")


def dir_flag(folder) -> str:
    """`` --dir FOLDER`` for the commands printed to the learner, or nothing for the default folder."""
    folder = str(folder)
    return "" if folder.rstrip("/") == DEFAULT_DIR else f" --dir {shlex.quote(folder)}"


def exercise_text(ex, folder=DEFAULT_DIR) -> str:
    """The file ``start`` writes: a module docstring, the imports, the reference's def with numbered blanks."""
    n = len(bl.blanks(ex.reference))
    d = dir_flag(folder)
    doc = (f'"""Exercise: {ex.name} -- {ex.title}, {ex.labels} of {ex.chapter}.\n\n'
           f"Replace each of the {n} numbered blanks (raise NotImplementedError(...)) by the line it names;\n"
           "each points to the line of the chapter that derives it. Then:\n\n"
           f"    python -m numpylstm.exercises check {ex.name}{d}   -- shapes, values, gradient check, suspects\n"
           f"    python -m numpylstm.exercises hint {ex.name}{d}    -- --level 1, 2, 3: label, chapter, formula\n"
           f"    python -m pytest {str(folder).rstrip('/')}/   -- the same checker, from pytest\n"
           '"""\n\n')
    return doc + ex.imports + "\n\n" + bl.exercise_body(ex.reference)


def test_text(ex) -> str:
    """The pytest module ``start`` writes next to the exercise: the same checker, its report on failure."""
    return (f'"""pytest route for the exercise {ex.name}: python -m pytest exercises/ (from the project root)."""\n\n'
            "from pathlib import Path\n\n"
            "import pytest\n\n"
            "from numpylstm.exercises import check_file\n\n\n"
            f"def test_{ex.name}():\n"
            f'    report = check_file("{ex.name}", Path(__file__).with_name("{ex.name}.py"))\n'
            "    if not report.ok:\n"
            '        pytest.fail(f"{report.name}:\\n{report.text}", pytrace=False)\n')


def solution_file_text(ex) -> str:
    """A finished exercise file: the imports and the reference's own source (what a right answer looks like)."""
    return ex.imports + "\n\n" + inspect.getsource(ex.reference)


def _usage(parser, msg):
    parser.error(msg)  # exits 2


def _exercise(parser, name):
    ex = BY_NAME.get(name)
    if ex is None:
        _usage(parser, f"argument NAME: unknown exercise {name!r}; choose from {', '.join(BY_NAME)}")
    if ex.reference is None:
        print(f"{name}: {ex.missing}")
        sys.exit(2)
    return ex


def _status(ex, folder):
    path = Path(folder) / f"{ex.name}.py"
    if ex.reference is None:
        return ex.missing
    if not path.is_file():
        return "not started"
    left = len(BLANK_RE.findall(path.read_text(encoding="utf-8", errors="replace")))
    return f"started, {left} blank{'s' if left != 1 else ''} left" if left else "started, no blanks left"


def cmd_list(args, parser):
    print(f"exercises, in course order (folder {args.dir}/):")
    for k, ex in enumerate(EXERCISES, 1):
        print(f"{k:>2}. {ex.name:<24}{ex.title + ', ' + ex.labels:<58}{_status(ex, args.dir)}")
    print("start one: python -m numpylstm.exercises start lstm_step_forward")
    return 0


def cmd_start(args, parser):
    ex = _exercise(parser, args.name)
    folder = Path(args.dir)
    path, test = folder / f"{ex.name}.py", folder / f"test_{ex.name}.py"
    if path.exists():
        print(f"{path} exists: not overwritten (it may hold your work; delete or rename it to start over)")
        return 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:  # "x": never replaces a file that appeared meanwhile
            fh.write(exercise_text(ex, folder))
        if not test.exists():
            with open(test, "x", encoding="utf-8") as fh:
                fh.write(test_text(ex))
    except OSError as e:
        print(f"cannot write into {folder}: {e}")
        return 1
    n = len(bl.blanks(ex.reference))
    print(f"wrote {path} ({n} blanks) and {test}")
    print(f"fill the blanks, then: python -m numpylstm.exercises check {ex.name}{dir_flag(folder)}   "
          f"(or: python -m pytest {folder}/)")
    return 0


def _targets(args, parser):
    """[(exercise, path)] for check: a NAME, a FILE, or every started exercise of the folder."""
    if args.target is None:
        found = [(ex, Path(args.dir) / f"{ex.name}.py") for ex in EXERCISES
                 if ex.reference is not None and (Path(args.dir) / f"{ex.name}.py").is_file()]
        if not found:
            _usage(parser, f"no exercise started in {args.dir}/: run start NAME first (list shows the names)")
        return found
    if args.target in BY_NAME:
        ex = _exercise(parser, args.target)
        path = Path(args.dir) / f"{ex.name}.py"
        if not path.is_file():
            _usage(parser, f"argument NAME: no file {path} (started in another folder? pass --dir FOLDER or the "
                           f"file's path); to start it: python -m numpylstm.exercises start {ex.name}{dir_flag(args.dir)}")
        return [(ex, path)]
    path = Path(args.target)
    if not path.is_file():
        _usage(parser, f"argument NAME|FILE: {args.target!r} is neither an exercise name nor a file")
    ex = BY_NAME.get(path.stem)
    if ex is None:  # a file with another name: the exercise whose function it defines
        text = path.read_text(encoding="utf-8", errors="replace")
        ex = next((e for e in EXERCISES if re.search(rf"^def {e.name}\(", text, re.M)), None)
        if ex is None:
            _usage(parser, f"argument FILE: {path} defines none of the exercises' functions ({', '.join(BY_NAME)})")
    return [(_exercise(parser, ex.name), path)]


def cmd_check(args, parser):
    status = 0
    for ex, path in _targets(args, parser):
        report = check_file(ex.name, path)
        print(f"check {ex.name} ({path})")
        for line in report.lines:
            print("  " + line)
        print(f"  {'RIGHT' if report.ok else 'NOT YET'}: {ex.name}")
        status = status or (0 if report.ok else 1)
    return status


def _next_blank(ex, folder):
    path = Path(folder) / f"{ex.name}.py"
    if path.is_file():
        left = BLANK_RE.findall(path.read_text(encoding="utf-8", errors="replace"))
        if left:
            return int(left[0])
    return 1


def cmd_hint(args, parser):
    ex = _exercise(parser, args.name)
    blanks = bl.blanks(ex.reference)
    k = args.blank if args.blank is not None else _next_blank(ex, args.dir)
    if not 1 <= k <= len(blanks):
        _usage(parser, f"argument --blank: {ex.name} has blanks 1 to {len(blanks)}; got {k}")
    b = blanks[k - 1]
    print(f"blank {b.number} of {len(blanks)} of {ex.name}: {b.lhs}")
    print(f"level 1, the label: ({b.label}), {bl.where(b.label)}")
    if args.level >= 2:
        loc = bl.label_location(b.label)
        print("level 2, the chapter's line:")
        for line in (loc[2] if loc else "(derivations/ not found)").splitlines():
            print("    " + line)
    if args.level >= 3:
        print(f"level 3, the formula: {b.comment}" if b.comment else "level 3, the formula:")
        print(f"    {b.code}")
    elif args.level < 3:
        print(f"more: python -m numpylstm.exercises hint {ex.name}{dir_flag(args.dir)} --blank {k} --level {args.level + 1}")
    return 0


def cmd_solution(args, parser):
    ex = _exercise(parser, args.name)
    print(f"# {ex.source}: {ex.name}, {ex.labels} of {ex.chapter}")
    print(inspect.getsource(ex.reference), end="")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m numpylstm.exercises",
                                     description="Write the textbook's functions yourself; the checker grades them "
                                                 "and names the wrong equation. Guide: docs/exercises.md")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the exercises in course order and how far you are")
    p.add_argument("--dir", default=DEFAULT_DIR, help="your exercise folder (default exercises/)")
    p = sub.add_parser("start", help="write NAME.py with numbered blanks (never overwrites) and its pytest module")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dir", default=DEFAULT_DIR, help="your exercise folder (default exercises/)")
    p = sub.add_parser("check", help="grade NAME (or FILE, or every started exercise)")
    p.add_argument("target", metavar="NAME|FILE", nargs="?")
    p.add_argument("--dir", default=DEFAULT_DIR, help="your exercise folder (default exercises/)")
    p = sub.add_parser("hint", help="the ladder for the next blank: label, chapter's line, formula")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--level", type=int, default=1, choices=(1, 2, 3), help="1 the label, 2 the chapter's line, "
                   "3 the formula")
    p.add_argument("--blank", type=int, help="which blank (default: the first one still in your file)")
    p.add_argument("--dir", default=DEFAULT_DIR, help="your exercise folder (default exercises/)")
    p = sub.add_parser("solution", help="print the reference code (the project's textbook function)")
    p.add_argument("name", metavar="NAME")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"list": cmd_list, "start": cmd_start, "check": cmd_check, "hint": cmd_hint,
               "solution": cmd_solution}[args.command]
    with pipe_safe_stdout():
        return command(args, parser)


if __name__ == "__main__":
    sys.exit(main())
