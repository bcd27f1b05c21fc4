"""Math in derivations/*.md, docs/*.md and README.md must render the same on GitHub as in any MathJax renderer.

GitHub applies Markdown's backslash escapes *inside* ``$...$`` and ``$$...$$`` before MathJax sees the
TeX: ``\\,`` becomes a visible comma, ``\\{ \\}`` lose their backslash (the braces vanish), ``\\\\`` becomes one
backslash (a ``bmatrix`` collapses to one row). Fenced ``math`` blocks and ``$`...`$`` spans are not
escaped. GitHub also does not always recognise a ``$`` span that opens right after ``(`` or ``"``, nor dollar
math inside ``*...*`` / ``**...**`` emphasis.

The scanner below finds, per file and line:

* a Markdown-escapable backslash sequence (a backslash followed by an ASCII punctuation character) inside
  dollar math, inline or display, also when a ``$$`` display spans several lines;
* a dollar math span opening right after ``(`` or ``"``;
* dollar math inside emphasis.

It ignores fenced code blocks (including fenced ``math`` blocks, which GitHub does not escape), code spans and
the ``$`...`$`` form. It is parametrised per file, so a failure names the file that needs the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "derivations").glob("*.md")) + sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# CommonMark: "Any ASCII punctuation character may be backslash-escaped."
ASCII_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
MASK = "\x00"  # replaces code; never part of math, emphasis or text checks
MATH = "\x01"  # replaces a math span when looking for emphasis around it


def _blank(s: str) -> str:
    """Same length, newlines kept, everything else MASK: line numbers and columns survive."""
    return "".join(ch if ch == "\n" else MASK for ch in s)


def mask_code(text: str) -> str:
    """Blank fenced blocks (```/~~~, any info string, including ```math) and code spans, incl. $`...`$."""
    out, fence = [], None
    for line in text.split("\n"):
        m = FENCE_OPEN.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append(_blank(line))
        elif fence is not None:
            if re.match(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$", line):
                fence = None
            out.append(_blank(line))
        else:
            out.append(line)
    text = "\n".join(out)
    # $`...`$ is GitHub's inline math that Markdown leaves alone: blank it with its dollars
    text = re.sub(r"\$(`+)(?!`).+?(?<!`)\1\$", lambda m: _blank(m.group(0)), text, flags=re.S)
    return CODE_SPAN.sub(lambda m: _blank(m.group(0)), text)


def math_spans(text: str):
    """(start, end, is_display) of every $...$ and $$...$$ span of code-masked text (end exclusive).

    A display runs from $$ to the next $$ (across lines). An inline span runs to the next unescaped $ of
    the same paragraph (a blank line ends it); ``\\$`` is a literal dollar.
    """
    spans, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch != "$":
            i += 1
            continue
        if text.startswith("$$", i):
            j = text.find("$$", i + 2)
            if j < 0:
                break
            spans.append((i, j + 2, True))
            i = j + 2
            continue
        j, k = None, i + 1
        while k < n:
            if text[k] == "\\":
                k += 2
                continue
            if text[k] == "$":
                j = k
                break
            if text.startswith("\n\n", k) or text.startswith("\n\n", k - 1):
                break
            k += 1
        if j is None:
            i += 1
            continue
        spans.append((i, j + 1, False))
        i = j + 1
    return spans


def _escapes(body: str):
    """The backslash-punctuation pairs in a span's TeX, e.g. ['\\,', '\\{'] (a pair is consumed whole)."""
    found, k = [], 0
    while k < len(body) - 1:
        if body[k] == "\\":
            if body[k + 1] in ASCII_PUNCT:
                found.append(body[k:k + 2])
            k += 2
        else:
            k += 1
    return found


def scan(text: str):
    """[(line, message), ...] for one Markdown document."""
    masked = mask_code(text)
    line_of = lambda pos: masked.count("\n", 0, pos) + 1  # noqa: E731
    problems = []
    spans = math_spans(masked)
    for start, end, display in spans:
        body = masked[start:end]
        esc = _escapes(body[2:-2] if display else body[1:-1])
        if esc:
            kind = "$$ display" if display else "$ math"
            problems.append((line_of(start), f"Markdown escape(s) {' '.join(sorted(set(esc)))} inside {kind} "
                                             f"{body[:40]!r}: GitHub eats the backslash; use a fenced math block, "
                                             "$`...`$, or \\thinspace / \\lbrace ... \\rbrace"))
        before = masked[start - 1] if start > 0 else ""
        if before and before in "(\"":
            problems.append((line_of(start), f"dollar math opens right after {before!r}: {body[:30]!r}; put a "
                                             "word or a space between them"))
    # emphasis around math: replace math spans with MATH, then look for *...* / **...** containing one
    chars = list(masked)
    for start, end, _ in spans:
        for k in range(start, end):
            if chars[k] != "\n":
                chars[k] = MATH
    flat = "".join(chars)
    for para_start, para in _paragraphs(flat):
        for m in re.finditer(r"(?<![\w*\\])(\*\*?)(?=[^\s*])(.+?)(?<=[^\s*\\])\1(?![\w*])", para, re.S):
            if MATH in m.group(2):
                problems.append((line_of(para_start + m.start()), "dollar math inside emphasis "
                                 f"{text[para_start + m.start():para_start + m.end()][:50]!r}: GitHub may not "
                                 "render it; move the math out of the *...*"))
    return sorted(problems)


def _paragraphs(text: str):
    pos = 0
    for part in re.split(r"(\n[ \t]*\n)", text):
        if not part.strip() or re.fullmatch(r"\n[ \t]*\n", part):
            pos += len(part)
            continue
        yield pos, part
        pos += len(part)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_math_survives_github_markdown(path):
    problems = scan(path.read_text(encoding="utf-8"))
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(
        f"{path.relative_to(ROOT)}:{line}: {msg}" for line, msg in problems)


# --------------------------------------------------------------------------- the scanner can fail


@pytest.mark.parametrize("md, line", [
    ("text $a\\,b$ text", 1),                          # thin space
    ("x\n\nthe set $\\{0, 1\\}$", 3),                  # braces
    ("$$ \\begin{bmatrix} a \\\\ b \\end{bmatrix} $$", 1),  # row break
    ("one\n$$\nx \\; y\n$$\n", 2),                     # multi-line display, reported at its first line
    ("| cell | $\\delta c_2\\, g_2$ |", 1),            # in a table
    ("$a_1 \\_ b$", 1),
])
def test_scanner_finds_escapes(md, line):
    found = scan(md)
    assert [ln for ln, msg in found if "escape" in msg] == [line], found


@pytest.mark.parametrize("md", [
    "see (`$\\delta hs_t = 0$`)",                    # a code span, not math
    "```\n$a\\,b$\n```",                              # fenced code
    "```math\na \\, b \\{ \\} \\\\\n```",              # fenced math: GitHub leaves it alone
    "~~~\n($x$)\n~~~",
    "inline $`a \\, b`$ and (the value $x$)",
    "$a \\thinspace b$, $\\lbrace 0 \\rbrace$, $\\tanh$, $\\delta$",
    "price \\$5 and \\$6",                            # escaped dollars
    "* a bullet with $x$ and *plain emphasis*",
    "**Bold.** then $x^*$ and $y^\\ast$",
    "$$ \\delta h = \\delta y \\odot m \\tag{D2} $$",
])
def test_scanner_accepts_clean_markdown(md):
    assert scan(md) == []


@pytest.mark.parametrize("md, what", [
    ("value (with $x$) fine, but ($y$) not", "after '('"),
    ('the "$x$" quoted', "after '\"'"),
    ("*through step $t+1$*", "emphasis"),
    ("**Why $O(\\varepsilon^2)$.** Because", "emphasis"),
    ("text\n*spanning $x$\nlines* end", "emphasis"),
])
def test_scanner_finds_openers_and_emphasis(md, what):
    found = scan(md)
    assert len(found) == 1 and what in found[0][1], found


def test_scanner_reports_the_right_line():
    md = "# T\n\nok $a$\n\n```\n$\\,$\n```\n\nbad $a\\,b$ here\n"
    assert [ln for ln, _ in scan(md)] == [9]
