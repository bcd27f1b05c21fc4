"""The README's Python examples run as pasted: every ```python block of README.md and of docs/api.md (the
complete program the README points to), in a fresh interpreter, in an empty folder. (Other pages hold
fragments on purpose, e.g. docs/exercises.md's blanks to fill; their own tests run what is runnable.)"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "api.md"]
BLOCKS = [b for page in PAGES
          for b in re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)]


def test_the_readme_has_a_complete_example():
    assert re.search(r"^```python\n", (ROOT / "README.md").read_text(encoding="utf-8"), re.M), \
        "README.md has no ```python block"
    text = "\n".join(BLOCKS)
    for name in ("nl.Adam(", "opt.step(", "nl.check_model(", "nl.check_layer(", "nl.MODEL_TOL", "nl.LAYER_TOL"):
        assert name in text, name


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_block_runs_as_pasted(i, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    p = subprocess.run([sys.executable, "-c", BLOCKS[i]], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, f"python block {i + 1} of README.md and docs/api.md failed:\n{p.stderr}"
