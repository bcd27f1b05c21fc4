"""Print the tables of derivations/09_worked_example.md from a plain-Python scalar LSTM (math only).

Run:  python derivations/scripts/worked_example.py
The numbers are independent of numpylstm; tests/test_derivations.py parses the tables back out of the
Markdown file and checks every value against numpylstm and against its own scalar computation.
"""

import math

# inputs: N = 1, T = 2, D = 1, H = 1; gate order i, f, g, o
X = [0.5, -1.0]
WX = [0.5, 0.2, -0.4, 0.3]
WH = [-0.3, 0.6, 0.5, 0.2]
B = [0.1, 1.0, 0.0, -0.1]
W = [0.5, 1.0]  # L = 0.5 h_1 + 1.0 h_2
GATES = "ifgo"


def fmt(v):
    """6 significant digits; exact zero printed as 0."""
    return "0" if v == 0 else f"{v:.6g}"


def num(v):
    """A number as it appears inside the arithmetic column: rounded, negatives in parentheses."""
    s = fmt(v)
    return f"({s})" if v < 0 else s


rows = []


def row(key, label, formula, arith, value):
    rows.append((key, label, formula, arith, value))
    return value


def sigma(z):
    return 1.0 / (1.0 + math.exp(-z))


h, c, acts, tcs = [0.0], [0.0], [], []
for t in (1, 2):
    a = []
    for k, gname in enumerate(GATES):
        v = X[t - 1] * WX[k] + h[t - 1] * WH[k] + B[k]
        a.append(row(f"a_{t}.{gname}", "F1", f"$x_{t} W_x^{gname} + h_{t-1} W_h^{gname} + b^{gname}$",
                     f"{num(X[t-1])}·{num(WX[k])} + {num(h[t-1])}·{num(WH[k])} + {num(B[k])}", v))
    i = row(f"i_{t}", "F2", f"$\\sigma(a^i_{t})$", f"1/(1+exp({fmt(-a[0])}))", sigma(a[0]))
    f = row(f"f_{t}", "F2", f"$\\sigma(a^f_{t})$", f"1/(1+exp({fmt(-a[1])}))", sigma(a[1]))
    g = row(f"g_{t}", "F3", f"$\\tanh(a^g_{t})$", f"tanh({fmt(a[2])})", math.tanh(a[2]))
    o = row(f"o_{t}", "F2", f"$\\sigma(a^o_{t})$", f"1/(1+exp({fmt(-a[3])}))", sigma(a[3]))
    ct = row(f"c_{t}", "F4", f"$f_{t} c_{t-1} + i_{t} g_{t}$",
             f"{num(f)}·{num(c[t-1])} + {num(i)}·{num(g)}", f * c[t - 1] + i * g)
    tc = row(f"tanhc_{t}", "F5", f"$\\tanh(c_{t})$", f"tanh({fmt(ct)})", math.tanh(ct))
    ht = row(f"h_{t}", "F5", f"$o_{t} \\tanh(c_{t})$", f"{num(o)}·{num(tc)}", o * tc)
    acts.append((i, f, g, o))
    tcs.append(tc)
    h.append(ht)
    c.append(ct)
row("L", "", "$w_1 h_1 + w_2 h_2$", f"{num(W[0])}·{num(h[1])} + {num(W[1])}·{num(h[2])}",
    W[0] * h[1] + W[1] * h[2])
n_forward = len(rows)

dh_in, dc_in = 0.0, 0.0  # dhT = dcT = 0: the incoming gradients, not the totals dh_2, dc_2
dWx, dWh, db = [0.0] * 4, [0.0] * 4, [0.0] * 4
for t in (2, 1):
    i, f, g, o = acts[t - 1]
    tc = tcs[t - 1]
    carried_h = "$\\delta h_T^{\\text{in}}$ (zero)" if t == 2 else f"`dh_{t}<-{t+1}`"
    carried_c = "$\\delta c_T^{\\text{in}}$ (zero)" if t == 2 else f"`dc_{t}<-{t+1}`"
    dh = row(f"dh_{t}", "B1", f"$w_{t}$ + {carried_h}", f"{num(W[t-1])} + {num(dh_in)}",
             W[t - 1] + dh_in)
    dc = row(f"dc_{t}", "B2", f"{carried_c} $+ \\delta h_{t}\\thinspace o_{t} (1 - \\tanh^2 c_{t})$",
             f"{num(dc_in)} + {num(dh)}·{num(o)}·(1 - {num(tc)}²)", dc_in + dh * o * (1 - tc * tc))
    do = row(f"do_{t}", "B3", f"$\\delta h_{t} \\tanh(c_{t})$", f"{num(dh)}·{num(tc)}", dh * tc)
    di = row(f"di_{t}", "B4", f"$\\delta c_{t}\\thinspace g_{t}$", f"{num(dc)}·{num(g)}", dc * g)
    df = row(f"df_{t}", "B5", f"$\\delta c_{t}\\thinspace c_{t-1}$", f"{num(dc)}·{num(c[t-1])}", dc * c[t - 1])
    dg = row(f"dg_{t}", "B6", f"$\\delta c_{t}\\thinspace i_{t}$", f"{num(dc)}·{num(i)}", dc * i)
    dcp = row(f"dc_{t-1}<-{t}", "B7", f"$\\delta c_{t}\\thinspace f_{t}$", f"{num(dc)}·{num(f)}", dc * f)
    da = [
        row(f"da_{t}.i", "B8", f"$\\delta i_{t}\\thinspace i_{t}(1-i_{t})$", f"{num(di)}·{num(i)}·(1 - {num(i)})",
            di * i * (1 - i)),
        row(f"da_{t}.f", "B8", f"$\\delta f_{t}\\thinspace f_{t}(1-f_{t})$", f"{num(df)}·{num(f)}·(1 - {num(f)})",
            df * f * (1 - f)),
        row(f"da_{t}.g", "B9", f"$\\delta g_{t} (1-g_{t}^2)$", f"{num(dg)}·(1 - {num(g)}²)", dg * (1 - g * g)),
        row(f"da_{t}.o", "B8", f"$\\delta o_{t}\\thinspace o_{t}(1-o_{t})$", f"{num(do)}·{num(o)}·(1 - {num(o)})",
            do * o * (1 - o)),
    ]
    terms = " + ".join(f"{num(da[k])}·{num(WH[k])}" for k in range(4))
    dhp = row(f"dh_{t-1}<-{t}", "B10", f"$\\delta a_{t} W_h^\\top$", terms, sum(da[k] * WH[k] for k in range(4)))
    terms = " + ".join(f"{num(da[k])}·{num(WX[k])}" for k in range(4))
    row(f"dx_{t}", "B11", f"$\\delta a_{t} W_x^\\top$", terms, sum(da[k] * WX[k] for k in range(4)))
    for k in range(4):
        dWx[k] += X[t - 1] * da[k]
        dWh[k] += h[t - 1] * da[k]
        db[k] += da[k]
    dh_in, dc_in = dhp, dcp
n_backward = len(rows)

rows_by_key = {r[0]: r[4] for r in rows}
for name, src, lab, coef in (("dWx", X, "B12", "x"), ("dWh", h[:2], "B13", "h"), ("db", [1.0, 1.0], "B14", "")):
    for gname in GATES:
        d1, d2 = rows_by_key[f"da_1.{gname}"], rows_by_key[f"da_2.{gname}"]
        if name == "db":
            formula = f"$\\delta a^{gname}_1 + \\delta a^{gname}_2$"
            arith = f"{num(d1)} + {num(d2)}"
        else:
            formula = f"${coef}_{{{0 if coef == 'h' else 1}}} \\delta a^{gname}_1 + {coef}_{{{1 if coef == 'h' else 2}}} \\delta a^{gname}_2$"
            arith = f"{num(src[0])}·{num(d1)} + {num(src[1])}·{num(d2)}"
        row(f"{name}.{gname}", lab, formula, arith, src[0] * d1 + src[1] * d2)


def table(rs):
    out = ["| key | eq. | formula | with numbers | value |", "|---|---|---|---|---|"]
    for key, label, formula, arith, value in rs:
        lab = f"({label})" if label else ""
        out.append(f"| `{key}` | {lab} | {formula} | {arith} | {fmt(value)} |")
    return "\n".join(out)


def input_table():
    out = ["| key | meaning | value |", "|---|---|---|"]
    for t in (1, 2):
        out.append(f"| `x_{t}` | input at step {t} | {fmt(X[t-1])} |")
    for name, vals, what in (("Wx", WX, "$W_x$"), ("Wh", WH, "$W_h$"), ("b", B, "$b$")):
        for gname, v in zip(GATES, vals):
            out.append(f"| `{name}.{gname}` | {what}, {gname} column | {fmt(v)} |")
    for t in (1, 2):
        out.append(f"| `w_{t}` | loss weight of $h_{t}$ | {fmt(W[t-1])} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(input_table())
    print()
    print(table(rows[:n_forward]))
    print()
    print(table(rows[n_forward:n_backward]))
    print()
    print(table(rows[n_backward:]))
