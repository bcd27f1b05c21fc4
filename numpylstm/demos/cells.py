"""What the char-RNN's cells learned: ``python demo.py cells`` writes one self-contained HTML page.

After Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks": run a trained
char model (a ``demo.py chars`` checkpoint) over the start of the validation text (the last 10% of --text,
the part it never trained on), keep every layer's c_t and h_t at every character (``textbook.lstm_forward``,
the state carried from zeros), and

* correlate every cell (layer, unit, c or h) with simple properties of the text at that character (inside
  quotation marks, position in the line, just after a space, ...), Pearson's r over the whole passage;
* write ``runs/chars/cells.html``: the passage with each character's background coloured by a chosen cell
  (h, or tanh(c) so both share one scale from -1 to +1, with a legend), the table of the most correlated cells
  (click a row to show that cell), a selector for any other cell, and a cell chosen by the address
  (``cells.html#kind=c&layer=0&unit=5``). No network, no external scripts: the
  activations are embedded as base64 int8 and drawn by a few lines of inline JavaScript.
"""

from __future__ import annotations

import base64
import html
import json
import sys
from pathlib import Path

import numpy as np

from .._files import Outputs
from ..checkpoint import model_from_checkpoint, read_checkpoint
from ..textbook import lstm_forward
from .chars import read_text, settings_from_checkpoint, text_fingerprint
from .text import Vocab, split

__all__ = ["PROPERTIES", "text_properties", "cell_states", "correlations", "run_cells", "render_page"]

# name -> what it is, for the page and the printout
PROPERTIES = {
    "inside quotes": "1 between an opening and a closing \" (reset at a blank line), else 0",
    "position in line": "characters since the last newline",
    "after a space": "1 where the character just read is a space",
    "position in word": "letters since the last non-letter (0 outside words)",
    "end of sentence": "1 where the character just read is . ! or ?",
    "inside parentheses": "1 between ( and )",
    "uppercase": "1 where the character just read is an upper-case letter",
    "newline": "1 where the character just read is a newline",
}


def text_properties(text: str) -> dict[str, np.ndarray]:
    """Each of PROPERTIES as a float array (len(text),): the property of the text read so far, at each char."""
    n = len(text)
    props = {k: np.zeros(n) for k in PROPERTIES}
    quote = paren = False
    col = word = 0
    prev = ""
    for t, ch in enumerate(text):
        if ch == "\n" and prev == "\n":
            quote = False  # a new paragraph: an unclosed quotation (continued speech) starts over
        if ch == '"':
            quote = not quote
        paren = True if ch == "(" else False if ch == ")" else paren
        col = 0 if ch == "\n" else col + 1
        word = word + 1 if ch.isalpha() else 0
        props["inside quotes"][t] = quote or ch == '"'  # the closing quote itself still belongs to the quotation
        props["position in line"][t] = col
        props["after a space"][t] = ch == " "
        props["position in word"][t] = word
        props["end of sentence"][t] = ch in ".!?"
        props["inside parentheses"][t] = paren or ch == ")"
        props["uppercase"][t] = ch.isupper()
        props["newline"][t] = ch == "\n"
        prev = ch
    return props


def cell_states(model, ids):
    """Every layer's c_t and h_t for token ids (T,), from a zero state: {"c": (L, T, H), "h": (L, T, H)}."""
    P, inp = model.params, np.asarray(ids)[None, :]
    cs, hs_all = [], []
    for l in range(model.num_layers):
        hs, _, cache = lstm_forward(inp, None, None, P[f"lstm.{l}.Wx"], P[f"lstm.{l}.Wh"], P[f"lstm.{l}.b"])
        # step cache t holds c_{t-1} (index 2) and the gates; c_t = f c_{t-1} + i g is (F4)
        c = np.stack([s[6] * s[2] + s[5] * s[7] for s in cache], axis=1)  # (F4)
        cs.append(c[0])
        hs_all.append(hs[0])
        inp = hs  # (S1)
    return {"c": np.array(cs), "h": np.array(hs_all)}


def correlations(states, props):
    """Pearson's r of every cell with every property: {prop: {"c": (L, H), "h": (L, H)}}.

    A property constant over the passage is left out; a constant cell gets r = 0."""
    out = {}
    for name, p in props.items():
        pc = p - p.mean()
        pn = np.sqrt((pc * pc).sum())
        if pn == 0:
            continue  # constant over the passage (no quotation in it, say): nothing to correlate with
        out[name] = {}
        for kind, a in states.items():
            a = a.astype(np.float64)
            ac = a - a.mean(axis=1, keepdims=True)
            an = np.sqrt((ac * ac).sum(axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (ac * pc[None, :, None]).sum(axis=1) / (an * pn)
            out[name][kind] = np.nan_to_num(r)
    return out


def top_cells(corr, per_property=3):
    """[(property, kind, layer, unit, r), ...]: the ``per_property`` cells of largest |r| for each property."""
    rows = []
    for name, by_kind in corr.items():
        cand = [(abs(r[l, u]), kind, l, u, float(r[l, u])) for kind, r in by_kind.items()
                for l in range(r.shape[0]) for u in range(r.shape[1])]
        cand.sort(reverse=True)
        rows += [(name, kind, l, u, r) for _, kind, l, u, r in cand[:per_property]]
    return rows


def _encode(values):
    """(..., T) floats in [-1, 1] -> base64 of int8 (values * 127, rounded)."""
    q = np.clip(np.rint(np.asarray(values, np.float64) * 127), -127, 127).astype(np.int8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def render_page(passage, states, rows, info) -> str:
    """The HTML page (a str). states: {"c": (L, T, H), "h": (L, T, H)} for the T characters of ``passage``."""
    L, T, H = states["h"].shape
    shown = {"h": states["h"], "c": np.tanh(states["c"])}  # tanh(c): the cell on the same -1..1 scale as h
    data = {
        "text": passage, "layers": L, "units": H, "length": T,
        # cell-major (L, H, T), so one cell is one contiguous run of T bytes
        "h": _encode(shown["h"].transpose(0, 2, 1)), "c": _encode(shown["c"].transpose(0, 2, 1)),
        "top": [{"property": p, "kind": k, "layer": l, "unit": u, "r": round(r, 4)} for p, k, l, u, r in rows],
        "info": info,
    }
    first = rows[0] if rows else ("", "h", 0, 0, 0.0)
    table = "\n".join(
        f'<tr data-kind="{k}" data-layer="{l}" data-unit="{u}"><td>{html.escape(p)}</td><td>layer {l} {k}[{u}]</td>'
        f'<td class="r">{r:+.3f}</td></tr>' for p, k, l, u, r in rows)
    props = "\n".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in PROPERTIES.items())
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="numpylstm demo.py cells">
<title>numpylstm: what the char-RNN's cells track</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 80em; color: #222; }}
#text {{ font-family: monospace; font-size: 14px; line-height: 1.55; white-space: pre-wrap; border: 1px solid #ccc;
        padding: 0.6em; }}
#text span {{ padding: 1px 0; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 2px 10px; text-align: left; }}
td.r {{ font-family: monospace; text-align: right; }}
tr[data-kind] {{ cursor: pointer; }}
tr.chosen {{ background: #ffe9a8; }}
#legend {{ display: inline-block; width: 240px; height: 14px; vertical-align: middle;
          background: linear-gradient(to right, rgb(33,102,172), rgb(255,255,255), rgb(178,24,43));
          border: 1px solid #888; }}
.cols {{ display: flex; gap: 2em; align-items: flex-start; }}
</style></head>
<body>
<h1>What the char-RNN's cells track</h1>
<p id="info">{html.escape(info)}</p>
<div class="cols">
<div>
<p><label>layer <input id="layer" type="number" min="0" max="{L - 1}" value="{first[2]}"></label>
<label>unit <input id="unit" type="number" min="0" max="{H - 1}" value="{first[3]}"></label>
<label><input type="radio" name="kind" value="c" {"checked" if first[1] == "c" else ""}> c (shown as tanh c)</label>
<label><input type="radio" name="kind" value="h" {"checked" if first[1] == "h" else ""}> h</label></p>
<p>showing <b id="chosen"></b> &nbsp; <span>-1</span> <span id="legend"></span> <span>+1</span>
(background of each character: the cell's value right after reading it)</p>
</div>
</div>
<div id="text"></div>
<h2>Cells most correlated with simple properties of the text</h2>
<p>Pearson's r between a cell's value (c or h, raw) and the property, over the whole passage. Click a row to show
that cell.</p>
<table><thead><tr><th>property</th><th>cell</th><th>r</th></tr></thead><tbody>
{table}
</tbody></table>
<h3>The properties</h3><ul>{props}</ul>
<script type="application/json" id="data">{payload}</script>
<script>
const D = JSON.parse(document.getElementById("data").textContent);
function bytes(b64) {{ const s = atob(b64), a = new Int8Array(s.length);
  for (let k = 0; k < s.length; k++) a[k] = (s.charCodeAt(k) << 24) >> 24; return a; }}
const V = {{c: bytes(D.c), h: bytes(D.h)}};
const box = document.getElementById("text"), spans = [];
for (const ch of D.text) {{ const s = document.createElement("span");
  s.textContent = ch === "\\n" ? "\\u21b5\\n" : ch; box.appendChild(s); spans.push(s); }}
function colour(v) {{ const t = Math.min(1, Math.abs(v));
  const end = v < 0 ? [33, 102, 172] : [178, 24, 43];
  return "rgb(" + end.map(e => Math.round(255 + (e - 255) * t)).join(",") + ")"; }}
function show(kind, layer, unit) {{
  layer = Math.max(0, Math.min(D.layers - 1, layer | 0)); unit = Math.max(0, Math.min(D.units - 1, unit | 0));
  const a = V[kind], off = (layer * D.units + unit) * D.length;
  for (let t = 0; t < D.length; t++) spans[t].style.background = colour(a[off + t] / 127);
  document.getElementById("chosen").textContent = "layer " + layer + " " + kind + "[" + unit + "]";
  document.getElementById("layer").value = layer; document.getElementById("unit").value = unit;
  document.querySelector("input[value=" + kind + "]").checked = true;
  for (const tr of document.querySelectorAll("tr[data-kind]"))
    tr.classList.toggle("chosen", tr.dataset.kind === kind && +tr.dataset.layer === layer && +tr.dataset.unit === unit);
}}
function current() {{ return [document.querySelector("input[name=kind]:checked").value,
  +document.getElementById("layer").value, +document.getElementById("unit").value]; }}
for (const el of document.querySelectorAll("input")) el.addEventListener("change", () => show(...current()));
for (const tr of document.querySelectorAll("tr[data-kind]"))
  tr.addEventListener("click", () => show(tr.dataset.kind, +tr.dataset.layer, +tr.dataset.unit));
const want = /kind=([ch]).*layer=(\\d+).*unit=(\\d+)/.exec(location.hash);  // e.g. cells.html#kind=c&layer=0&unit=5
if (want) show(want[1], +want[2], +want[3]); else show(...current());
</script>
</body></html>
"""


def run_cells(checkpoint, text_path, *, out=None, length=2000, offset=0, per_property=3, overwrite=False,
              stream=None) -> int:
    """Write the page; print the most correlated cells. ValueError for unusable input."""
    with Outputs("demo.py cells") as outputs:
        page = Path(out) if out is not None else Path(checkpoint).parent / "cells.html"
        outputs.claim(page, "html", overwrite=overwrite)  # never a checkpoint, a picture, a file of yours
        return _run(checkpoint, text_path, page, length, offset, per_property, stream, outputs)


def _run(checkpoint, text_path, page, length, offset, per_property, stream, outputs):
    stream = sys.stdout if stream is None else stream
    s, user = settings_from_checkpoint(checkpoint)
    model, ck = model_from_checkpoint(checkpoint)
    if model.cell != "lstm":  # cell_states reads textbook.py's LSTM caches
        raise ValueError(f"{checkpoint} holds a chars model of cell {model.cell!r}; this page shows the cell states "
                         "of the standard LSTM (cell 'lstm') only")
    vocab = Vocab.from_array(ck.extra["vocab"])
    text = read_text(text_path)
    same = user.get("text") == text_fingerprint(text)
    ids = vocab.encode(text, name="--text")
    _, val_ids = split(ids, s.val_fraction)
    start = len(ids) - len(val_ids)
    if offset >= len(val_ids):
        raise ValueError(f"--offset {offset} is past the end of the validation text ({len(val_ids)} characters)")
    para = text.find("\n\n", start + offset)  # begin at a paragraph, so quotation marks pair up
    begin = para + 2 if 0 <= para < len(text) - 2 else start + offset
    passage = text[begin:begin + length]
    if len(passage) < 2:
        raise ValueError(f"the passage is {len(passage)} character(s) long; need at least 2")
    states = cell_states(model, ids[begin:begin + len(passage)])
    corr = correlations(states, text_properties(passage))
    rows = top_cells(corr, per_property)
    # file names only: the page is made to be shown, and a folder path would show the user's machine
    info = (f"{model.num_layers} x {model.hidden_size} LSTM from {Path(checkpoint).name} (step {ck.step}); "
            f"{len(passage):,} characters of the validation text (the last {s.val_fraction:.0%} of "
            f"{Path(text_path).name}) "
            f"from the first paragraph after offset {offset}, state from zeros" + ("" if same else
                                                          "; NOTE: not the text this model was trained on"))
    try:
        page = outputs.write_text(page, render_page(passage, states, rows, info))
    except OSError as exc:
        print(f"error: could not write the page {page} ({exc.strerror or exc})", file=sys.stderr, flush=True)
        return 1
    if not same:
        print(f"note: {text_path} is not the text {checkpoint} was trained on", file=stream)
    print("cells most correlated with properties of the text (Pearson r):", file=stream)
    for p, k, l, u, r in rows:
        print(f"  {p:<20} layer {l} {k}[{u}]  r = {r:+.3f}", file=stream)
    print(f"page: {page}", file=stream, flush=True)
    return 0
