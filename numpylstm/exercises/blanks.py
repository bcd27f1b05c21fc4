"""Exercise files made from the reference source, so they never drift from it.

``exercise_text(ex)``: the module a learner starts from. The imports the function needs, then the reference
function's own ``def`` line and docstring (shapes, labels), then its body with every line that cites an
equation label replaced by a numbered blank

    raise NotImplementedError("blank 3 of 14: (B4) di = ...  [derivations/03_backward.md line 113]")

at the same indentation, pointing to the line of the chapter that derives it. Lines without a label (the
cache unpacking, the loop, the return) stay, so the learner writes equations, not plumbing.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

LABEL_RE = re.compile(r"#\s*\(([A-Z]\d+)\)")
TAG_RE = re.compile(r"\\tag\{([A-Z]\d+)\}")
DERIVATIONS = Path(__file__).resolve().parents[2] / "derivations"


@dataclass(frozen=True)
class Blank:
    """One blank of an exercise: its number, label, the code it replaces and the comment that followed it."""

    number: int
    label: str
    code: str  # the reference line, e.g. "di = dc_t * g"
    comment: str  # the reference comment after the label, e.g. "di_t = dc_t g_t"

    @property
    def lhs(self) -> str:
        """What the line computes: ``di = ...``, ``dWx += ...``, or the call ``np.add.at(...)``."""
        m = re.match(r"^([\w\s,\[\]:.]+?)\s*(=|\+=|-=|\*=|/=)\s", self.code)
        if m:
            return f"{m.group(1)} {m.group(2)} ..."
        return self.code.split("(")[0] + "(...)"


def label_location(label):
    """(chapter file name, line number, the chapter's line(s) of the display) where (label) is defined, or
    None when derivations/ is not next to the package."""
    if not DERIVATIONS.is_dir():
        return None
    for path in sorted(DERIVATIONS.glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for k, line in enumerate(lines):
            if f"\\tag{{{label}}}" in line:
                start = k  # the display: back to the opening ```math fence (or the $$ line itself)
                while start > 0 and not lines[start].strip().startswith(("```", "$$")) and k - start < 12:
                    start -= 1
                if lines[start].strip().startswith("```"):
                    start += 1  # the display's first line, after the fence
                return path.name, start + 1, "\n".join(lines[start:k + 1]).strip()
    return None


def where(label) -> str:
    loc = label_location(label)
    return f"derivations/{loc[0]} line {loc[1]}" if loc else "derivations/"


def reference_parts(func):
    """(head lines: def and docstring, body lines) of ``func``'s source, dedented."""
    src = textwrap.dedent(inspect.getsource(func))
    lines = src.splitlines()
    node = ast.parse(src).body[0]
    first = node.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
    end = first.end_lineno if has_doc else node.body[0].lineno - 1
    return lines[:end], lines[end:]


def blanks(func):
    """The blanks of ``func``'s exercise, in source order."""
    out = []
    for line in reference_parts(func)[1]:
        m = LABEL_RE.search(line)
        if m and line.strip() and not line.strip().startswith("#"):
            code, comment = line.split("#", 1)
            comment = LABEL_RE.sub("", "#" + comment).strip()
            out.append(Blank(len(out) + 1, m.group(1), code.strip(), comment))
    return out


def exercise_body(func):
    """``func``'s source with each labelled line replaced by its numbered blank."""
    head, body = reference_parts(func)
    bl = blanks(func)
    out, k = list(head), 0
    for line in body:
        m = LABEL_RE.search(line)
        if m and line.strip() and not line.strip().startswith("#"):
            b = bl[k]
            k += 1
            indent = line[: len(line) - len(line.lstrip())]
            msg = f"blank {b.number} of {len(bl)}: ({b.label}) {b.lhs}  [{where(b.label)}]"
            out.append(f"{indent}raise NotImplementedError({msg!r})")
        else:
            out.append(line)
    return "\n".join(out) + "\n"
