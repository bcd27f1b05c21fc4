"""The front page and the pages it links: short, every link and image resolves, every image fits GitHub's column,
every file named is a link, and no text tells how the project was developed or where it was developed.

* README.md has at most 1,500 words (whitespace-separated tokens of the Markdown source, code included).
* Every relative link and image in README.md, docs/*.md and derivations/*.md points at an existing file (and an
  existing heading, for a ``#fragment`` into a Markdown page).
* Every image is at most 880 px wide (GitHub's column) or shown with an ``<img width=...>`` at most 880.
* README.md: every code span naming a file or folder of the project is a link.
* No development-history wording or development-machine path in README.md, docs/, derivations/ (chapters and
  scripts), demo.py and numpylstm/demos/ (help texts and comments). Each check is shown to fail on a bad input.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_WORDS = 1500
COLUMN_PX = 880
PAGES = [README] + sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "derivations").glob("*.md"))
PROSE = PAGES + [ROOT / "demo.py"] + sorted((ROOT / "numpylstm" / "demos").glob("*.py")) + sorted(
    (ROOT / "derivations" / "scripts").glob("*.py"))

LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMG_TAG = re.compile(r"<img\s[^>]*>", re.I)
HISTORY = re.compile(
    r"\b(this|an earlier|a later|the last|a previous|earlier|previous) session\b|\bafter (review|rereading)\b"
    r"|\bmeasured (it )?again\b|\bwe (measured|changed|fixed|found)\b|\b(see |in |per )?issue #?\d+\b"
    r"|\bdevelopment machine\b|\b(is|was) developed on\b|\bbefore the (pipeline|wavefront)\b",
    re.I)
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/root/|/home/[a-z_][\w-]*/|/tmp/bash_jobs|C:\\\\Users\\\\)")


def words(text: str) -> int:
    return len(text.split())


def _strip_code_blocks(text: str) -> str:
    """Fenced code blocks replaced by empty lines (line numbers kept): links inside them are not links."""
    return re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)


def _anchors(md: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for line in _strip_code_blocks(md.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def broken_links(page: Path) -> list[str]:
    text = _strip_code_blocks(page.read_text(encoding="utf-8"))
    bad = []
    targets = [m.group(3) for m in LINK.finditer(text)]
    targets += re.findall(r'<img\s[^>]*src="([^"]+)"', text, re.I)
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#") and not target[1:]:
            continue  # http:, mailto: ...
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
        elif frag and dest.suffix == ".md" and frag not in _anchors(dest):
            bad.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    return bad


def image_width(path: Path) -> float:
    """Natural width in CSS px of a PNG or an SVG."""
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">I", data[16:20])[0]
    m = re.search(rb'<svg [^>]*width="([\d.]+)(pt|px)?"', data[:2000])
    assert m, f"{path}: not a PNG or SVG with a width"
    return float(m.group(1)) * (4 / 3 if m.group(2) == b"pt" else 1)


def too_wide_images(page: Path) -> list[str]:
    text = _strip_code_blocks(page.read_text(encoding="utf-8"))
    bad = []
    for m in LINK.finditer(text):
        if m.group(1) and not re.match(r"^[a-z]+:", m.group(3)):
            f = (page.parent / m.group(3)).resolve()
            if f.exists() and image_width(f) > COLUMN_PX:
                bad.append(f"{page.relative_to(ROOT)}: {m.group(3)} is {image_width(f):.0f} px wide")
    for tag in IMG_TAG.findall(text):
        w = re.search(r'width="?(\d+)', tag)
        if not w or int(w.group(1)) > COLUMN_PX:
            bad.append(f"{page.relative_to(ROOT)}: {tag} has no width <= {COLUMN_PX}")
    return bad


def unlinked_files(page: Path) -> list[str]:
    """Code spans naming a project file or folder (with a slash, or ending in .py/.md) outside a link."""
    text = _strip_code_blocks(page.read_text(encoding="utf-8"))
    linked = {m.span() for m in LINK.finditer(text)}
    bad = []
    for m in re.finditer(r"`([\w./-]+)`", text):
        name = m.group(1)
        if not ("/" in name or name.endswith((".py", ".md"))) or name.startswith("runs/"):
            continue
        if not (ROOT / name).exists():
            continue
        if not any(a <= m.start() and m.end() <= b for a, b in linked):
            bad.append(f"{page.relative_to(ROOT)}: `{name}` is not a link")
    return bad


def history(path: Path) -> list[str]:
    bad = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for rx in (HISTORY, MACHINE_PATH):
            m = rx.search(line)
            if m:
                bad.append(f"{path.relative_to(ROOT)}:{no}: {m.group(0)!r}")
    return bad


# --------------------------------------------------------------------------------------------------- tests


def test_the_readme_is_a_front_page():
    n = words(README.read_text(encoding="utf-8"))
    assert n <= MAX_WORDS, f"README.md has {n} words; the front page holds at most {MAX_WORDS}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_exists(page):
    assert not broken_links(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_image_fits_the_column(page):
    assert not too_wide_images(page)


def test_every_file_the_readme_names_is_a_link():
    assert not unlinked_files(README)


@pytest.mark.parametrize("path", PROSE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_development_history_or_machine_path(path):
    assert not history(path)


def test_the_checks_fail_on_bad_pages(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    wide = docs / "wide.png"  # a PNG header claiming 1500 x 10 px
    wide.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + struct.pack(">II", 1500, 10) + b"\x00" * 20)
    page = docs / "page.md"
    page.write_text("# Title\n\n[gone](missing.md) [bad anchor](page.md#nowhere) [ok](page.md#title)\n"
                    "![wide](wide.png) <img src=\"wide.png\" width=\"700\">\n"
                    "Measured again in this session on /work/x.\n", encoding="utf-8")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        links = broken_links(page)
        assert len(links) == 2 and "missing.md" in links[0] and "no such heading" in links[1]
        assert len(too_wide_images(page)) == 1  # the <img width=700> is fine; the bare 1500 px image is not
        assert [h.split(": ", 1)[1] for h in history(page)] == ["'Measured again'", "'/work/'"]
        (tmp_path / "demo.py").write_text("")
        page.write_text("Run `demo.py` and [`demo.py`](../demo.py).\n", encoding="utf-8")
        assert unlinked_files(page) == ["docs/page.md: `demo.py` is not a link"]
    finally:
        ROOT = old
    assert MACHINE_PATH.search("the text at /work/shared/data/anna.txt") and not MACHINE_PATH.search("runs/work/")
    assert words("a b\nc") == 3
