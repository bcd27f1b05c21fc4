"""derivations/scripts/figures.py draws the three figures of derivations/ from one command.

Runs the script into a temporary folder (never into derivations/figures/) and checks: every file is written,
every equation label drawn, e.g. "(B7)", is defined in derivations/*.md, each figure draws the labels its
chapter promises, and the smallest text is at least 11 px when GitHub scales the figure to its ~880 px column.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "derivations" / "scripts" / "figures.py"
TAG_RE = re.compile(r"\\tag\{([A-Z]\d+)\}")

spec = importlib.util.spec_from_file_location("figures", SCRIPT)
figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)

NAMES = ["unrolled_sine", "cell_forward", "cell_backward", "gru_cell"]
MUST_DRAW = {
    "unrolled_sine": {"D1", "H1"},
    "cell_forward": {f"F{k}" for k in range(1, 6)},
    "cell_backward": {"B1", "B2", "B7", "B10"} | {f"B{k}" for k in range(3, 15)},
    "gru_cell": {f"U{k}" for k in range(1, 7)},
}


def defined_labels():
    return {m for p in (ROOT / "derivations").glob("*.md") for m in TAG_RE.findall(p.read_text(encoding="utf-8"))}


def test_one_command_writes_every_figure(tmp_path):
    out = tmp_path / "figs"
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in NAMES:
        for ext in ("svg", "png"):
            f = out / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f"{f.name} missing or empty"
    for name in NAMES:
        head = (out / f"{name}.svg").read_text(encoding="utf-8")[:600]
        # shown at its natural size, an SVG must fit GitHub's ~880 px column (660 pt), not overflow it
        assert re.search(r'<svg [^>]*width="660pt"', head), f"{name}.svg: natural width is not 880 px"


@pytest.mark.parametrize("name", NAMES)
def test_labels_drawn_exist_in_the_derivations(name):
    fig = figures.FIGURES[name]()
    drawn = set(figures.drawn_labels(fig))
    figures.plt.close(fig)
    undefined = drawn - defined_labels()
    assert not undefined, f"{name} draws labels no derivation defines: {sorted(undefined)}"
    assert MUST_DRAW[name] <= drawn, f"{name} misses labels: {sorted(MUST_DRAW[name] - drawn)}"


@pytest.mark.parametrize("name", NAMES)
def test_text_readable_at_github_column_width(name):
    fig = figures.FIGURES[name]()
    px = figures.smallest_text_px(fig, column_px=880)
    figures.plt.close(fig)
    assert px >= 11.0, f"{name}: smallest text {px:.1f} px at 880 px wide"


def test_label_check_can_fail():
    fig, ax = figures.new_figure(2.0)
    figures.text(ax, 10, 5, "(Z9) not a label of the derivations")
    assert set(figures.drawn_labels(fig)) - defined_labels() == {"Z9"}
    figures.plt.close(fig)


def test_bad_out_folder_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(blocker / "sub")], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode != 0
    assert res.stderr.strip().startswith("--out:") and len(res.stderr.strip().splitlines()) == 1, res.stderr


# 02 and 03 are rewritten on another branch (textbook chapters); until that lands these two cases fail by design.
@pytest.mark.parametrize("name, chapter", [("unrolled_sine", "01_notation.md"), ("cell_forward", "02_forward.md"),
                                           ("cell_backward", "03_backward.md"), ("gru_cell", "12_the_lstm_family.md")])
def test_chapters_show_their_figure(name, chapter):
    text = (ROOT / "derivations" / chapter).read_text(encoding="utf-8")
    assert f"figures/{name}.svg" in text
    assert (ROOT / "derivations" / "figures" / f"{name}.svg").is_file()
