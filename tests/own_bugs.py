"""Single-line LSTM step-backward bugs that are not in the zoo (numpylstm/bugzoo.py), for the diagnosis tests.

Each is textbook.lstm_step_backward with one line replaced: (true label, the line as textbook has it, the
wrong line). ``mutant(bug)`` builds the function from textbook's own source, so the copy never drifts.
"""

import inspect
import textwrap

import numpy as np

from numpylstm import textbook

OWN_BUGS = {
    "do without tanh": ("B3", "do_ = dh_t * tanh_c", "do_ = dh_t * (f * c_prev + i * g)"),
    "di uses i": ("B4", "di = dc_t * g", "di = dc_t * i"),
    "df uses f": ("B5", "df = dc_t * c_prev", "df = dc_t * f"),
    "dg uses g": ("B6", "dg = dc_t * i", "dg = dc_t * g"),
    "dc_prev uses i": ("B7", "dc_prev = dc_t * f", "dc_prev = dc_t * i"),
    "tanh' not squared": ("B9", "dag = dg * (1 - g**2)", "dag = dg * (1 - g)"),
    "dc_t without dc_next": ("B2", "dc_t = dc_next + dh_t * o * (1 - tanh_c**2)", "dc_t = dh_t * o * (1 - tanh_c**2)"),
    "tanh' at h": ("B2", "dc_t = dc_next + dh_t * o * (1 - tanh_c**2)",
                   "dc_t = dc_next + dh_t * o * (1 - (o * tanh_c)**2)"),
    "db averaged over the batch": ("B14", "db = da.sum(axis=0)", "db = da.mean(axis=0)"),
    "dWx from batch sums": ("B12", "dWx = x_t.T @ da", "dWx = np.outer(x_t.sum(axis=0), da.sum(axis=0))"),
    "forget derivative uses i": ("B8", "daf = df * f * (1 - f)", "daf = df * f * (1 - i)"),
    "dWh from h_t": ("B13", "dWh = h_prev.T @ da", "dWh = (o * tanh_c).T @ da"),
}


def mutant(name):
    """textbook.lstm_step_backward with the line of OWN_BUGS[name] replaced (the rest is textbook's code)."""
    _, old, new = OWN_BUGS[name]
    src = textwrap.dedent(inspect.getsource(textbook.lstm_step_backward))
    lines = src.splitlines()
    hits = [k for k, line in enumerate(lines) if line.strip().split("  #")[0] == old]
    assert len(hits) == 1, (name, old)
    indent = lines[hits[0]][: len(lines[hits[0]]) - len(lines[hits[0]].lstrip())]
    lines[hits[0]] = indent + new + "  # BUG"
    namespace = {"np": np}
    exec(compile("\n".join(lines), f"<{name}>", "exec"), namespace)  # noqa: S102
    return namespace["lstm_step_backward"]


# Single-line bugs of chapter 12's steps: (the line of numpylstm/gru.py, the wrong line, the expected suspects)
GRU_BUGS = [("dn = dh_t * (1 - z)", "dn = dh_t * z", ["U7"]),
            ("dan = dn * (1 - n**2)", "dan = dn * (1 - n)", ["U9"]),
            ("dr = dan * ah_n", "dr = dan * n", ["U10"]),
            ("dar = dr * r * (1 - r)", "dar = dr * r", ["U11"]),
            ("dz = dh_t * (h_prev - n)", "dz = dh_t * (n - h_prev)", ["U8", "U11"]),
            ("dah = np.concatenate([dar, daz, dan * r], axis=1)", "dah = np.concatenate([dar, daz, dan], axis=1)",
             ["U13"]),
            ("dh_prev = dh_t * z + dah @ Wh.T", "dh_prev = dah @ Wh.T", ["U14"]),
            ("dbh = dah.sum(axis=0)", "dbh = dax.sum(axis=0)", ["U16"]),
            ("dx_t = dax @ Wx.T", "dx_t = dah @ Wx.T", ["U17"]),
            ("dax = np.concatenate([dar, daz, dan], axis=1)", "dax = np.concatenate([daz, dar, dan], axis=1)",
             ["U12"])]

# ... of numpylstm/cells/peephole.py: (line, wrong line, expected suspects, the zoo bug it is, if one)
PEEPHOLE_BUGS = [
    ("dc_t = dc_next + dh_t * o * (1 - tanh_c**2) + dao * p[2]", "dc_t = dc_next + dh_t * o * (1 - tanh_c**2)",
     ["P4"], None),
    ("dc_t = dc_next + dh_t * o * (1 - tanh_c**2) + dao * p[2]", "dc_t = dc_next + dh_t * o + dao * p[2]",
     ["P4"], "no tanh'"),
    ("dc_prev = dc_t * f + dai * p[0] + daf * p[1]", "dc_prev = dc_t * f", ["P5"], None),
    ("dp_i = (dai * c_prev).sum(axis=0)", "dp_i = (dai * c_t).sum(axis=0)", ["P6"], None),
    ("dp_o = (dao * c_t).sum(axis=0)", "dp_o = (dao * c_prev).sum(axis=0)", ["P7"], None),
    ("df = dc_t * c_prev", "df = dc_t * c_t", ["B5"], "df uses c_t"),
    ("dag = dg * (1 - g**2)", "dag = dg * (1 - g)", ["B9"], None)]
