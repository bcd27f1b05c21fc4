"""Issue 23's repros, one line each: ``python benchmarks/issue23_repros.py [ROOT]`` runs every case against the
tree ROOT (default: this checkout) in fresh temporary folders and prints a Markdown table row per case: the
exit status, the last line of stderr (shortened) and what was left on disk. Run it on the commit before the
fix and after it to get the before/after table of the closing note. Tiny sizes: the whole table takes about a
minute or two on a 2-core machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
PY = sys.executable
TINY = ["--lstm-size", "4", "--timesteps", "5", "--batch-size", "4", "--warmup", "2"]
TEXT = ("Happy families are all alike; every unhappy family is unhappy in its own way.\n"
        "Everything was in confusion in the Oblonskys' house. ") * 200
CH = ["--lstm-size", "8", "--n-seqs", "4", "--n-steps", "10", "--eval-every", "20", "--sample-length", "0"]


def sh(cmd, cwd, timeout=240, **kw):
    p = subprocess.run(cmd, shell=True, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout,
                       executable="/bin/bash", **kw)
    return p.returncode, p.stdout, p.stderr


def last(err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    s = lines[-1] if lines else ""
    tb = " [traceback]" if "Traceback" in err else ""
    return (s[:110] + ("..." if len(s) > 110 else "")).replace("|", "\\|") + tb


def demo(args):
    return f"{PY} {ROOT}/demo.py {args}"


def ls(d):
    d = Path(d)
    return ", ".join(sorted(p.name for p in d.iterdir() if not p.name.startswith("."))) if d.is_dir() else "-"


def ckstep(path):
    code = ("import sys; from numpylstm.checkpoint import read_checkpoint as r; "
            f"print(r({str(path)!r}).step)")
    p = subprocess.run([PY, "-c", code], env=ENV, capture_output=True, text=True)
    return p.stdout.strip() or "unreadable"


CASES = []


def case(item, name):
    def deco(fn):
        CASES.append((item, name, fn))
        return fn
    return deco


@case(1, "terminal closed (script killed) during sine")
def _(d):
    cmd = demo(f"--steps 3000 {' '.join(TINY)} --no-plot --out {d}/h 2>{d}/err")
    p = subprocess.Popen(["script", "-qfc", cmd, "/dev/null"], stdout=subprocess.DEVNULL, stdin=subprocess.PIPE,
                         env=ENV, cwd=d)
    time.sleep(6)
    p.kill()
    p.wait()
    for _ in range(120):  # python may live on: wait for it
        if subprocess.run(["pgrep", "-f", "--", f"--out {d}/h"], capture_output=True).returncode:
            break
        time.sleep(0.5)
    err = Path(d, "err").read_text() if Path(d, "err").exists() else ""
    return "?", last(err), f"{d}/h: {ls(Path(d) / 'h')}"


@case(1, "terminal closed during chars")
def _(d):
    Path(d, "t.txt").write_text(TEXT)
    cmd = demo(f"chars --text t.txt --minutes 0.5 {' '.join(CH)} --out {d}/h 2>{d}/err")
    p = subprocess.Popen(["script", "-qfc", cmd, "/dev/null"], stdout=subprocess.DEVNULL, stdin=subprocess.PIPE,
                         env=ENV, cwd=d)
    time.sleep(8)
    p.kill()
    p.wait()
    for _ in range(120):
        if subprocess.run(["pgrep", "-f", "--", f"--out {d}/h"], capture_output=True).returncode:
            break
        time.sleep(0.5)
    err = Path(d, "err").read_text() if Path(d, "err").exists() else ""
    return "?", last(err), f"h: {ls(Path(d) / 'h')}"


@case(3, "two sine runs (with plots) into one --out at once")
def _(d):
    a = subprocess.Popen("exec " + demo(f"--steps 100000 {' '.join(TINY)} --out o"), shell=True, cwd=d, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    b = subprocess.Popen("exec " + demo(f"--steps 100000 {' '.join(TINY)} --out o"), shell=True, cwd=d, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    a.send_signal(signal.SIGTERM)
    if b.poll() is None:
        b.send_signal(signal.SIGTERM)
    ea, eb = a.communicate()[1], b.communicate()[1]
    return f"{a.returncode}/{b.returncode}", "A: " + last(ea) + " // B: " + last(eb), f"o: {ls(Path(d) / 'o')}"


@case(3, "two sine runs (--no-plot) into one --out at once")
def _(d):
    a = subprocess.Popen("exec " + demo(f"--steps 100000 {' '.join(TINY)} --no-plot --out o"), shell=True, cwd=d, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(4)
    b = subprocess.Popen("exec " + demo(f"--steps 100000 {' '.join(TINY)} --no-plot --out o"), shell=True, cwd=d, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(4)
    os.killpg(a.pid, signal.SIGTERM)
    if b.poll() is None:
        os.killpg(b.pid, signal.SIGTERM)
    ea, eb = a.communicate()[1], b.communicate()[1]
    return f"{a.returncode}/{b.returncode}", "A: " + last(ea) + " // B: " + last(eb), f"o: {ls(Path(d) / 'o')}"


def _signal_in_plots(d, sig):
    """demo.py sine with a signal sent to itself when the loss plot starts (patched in, so it is not a race)."""
    code = ("import os, runpy, sys; import numpylstm.demos.plots as P; orig = P.plot_loss\n"
            f"def hook(*a, **k):\n    os.kill(os.getpid(), {int(sig)}); return orig(*a, **k)\n"
            "P.plot_loss = hook\n"
            f"sys.argv = ['demo.py', '--steps', '60', *{TINY!r}, '--out', 'o']; "
            f"sys.path.insert(0, {str(ROOT)!r}); runpy.run_path({str(ROOT / 'demo.py')!r}, run_name='__main__')")
    p = subprocess.run([PY, "-c", code], cwd=d, env=ENV, capture_output=True, text=True, timeout=240)
    return p.returncode, last(p.stderr), f"o: {ls(Path(d) / 'o')}"


@case(4, "SIGTERM during the sine plots")
def _(d):
    return _signal_in_plots(d, signal.SIGTERM)


@case(4, "Ctrl-C during the sine plots")
def _(d):
    return _signal_in_plots(d, signal.SIGINT)


@case(5, "sine replaces a user's loss.png")
def _(d):
    Path(d, "o").mkdir()
    Path(d, "o", "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n my own picture")
    rc, out, err = sh(demo(f"--steps 5 {' '.join(TINY)} --out o"), d)
    kept = Path(d, "o", "loss.png").read_bytes() == b"\x89PNG\r\n\x1a\n my own picture"
    return rc, last(err), f"user's loss.png kept: {kept}"


@case(5, "chars replaces a user's loss.png")
def _(d):
    Path(d, "t.txt").write_text(TEXT)
    Path(d, "o").mkdir()
    Path(d, "o", "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n my own picture")
    rc, out, err = sh(demo(f"chars --text t.txt --epochs 1 {' '.join(CH)} --out o"), d)
    kept = Path(d, "o", "loss.png").read_bytes() == b"\x89PNG\r\n\x1a\n my own picture"
    return rc, last(err), f"user's loss.png kept: {kept}"


@case(5, "adding replaces a user's adding.png")
def _(d):
    Path(d, "o").mkdir()
    Path(d, "o", "adding.png").write_bytes(b"\x89PNG\r\n\x1a\n my own picture")
    rc, out, err = sh(demo("adding --timesteps 4 --lstm-size 3 --minutes 0.02 --out o"), d)
    kept = Path(d, "o", "adding.png").read_bytes() == b"\x89PNG\r\n\x1a\n my own picture"
    return rc, last(err), f"user's adding.png kept: {kept}"


@case(5, "cells --out C.npz --overwrite (C.npz a checkpoint)")
def _(d):
    Path(d, "t.txt").write_text(TEXT)
    sh(demo(f"chars --text t.txt --epochs 1 {' '.join(CH)} --no-plot --quiet --out o"), d)
    sh(demo(f"--steps 3 {' '.join(TINY)} --no-plot --checkpoint C.npz --quiet"), d)
    rc, out, err = sh(demo("cells --checkpoint o/chars.npz --text t.txt --out C.npz --overwrite"), d)
    return rc, last(err), f"C.npz still a checkpoint at step {ckstep(Path(d, 'C.npz'))}"


@case(5, "--checkpoint DIR/loss.png, then the plot")
def _(d):
    rc, out, err = sh(demo(f"--steps 5 {' '.join(TINY)} --out o --checkpoint o/loss.png"), d)
    return rc, last(err), f"o/loss.png a checkpoint: step {ckstep(Path(d, 'o', 'loss.png'))}"


@case(5, "SIGTERM during the inside plot (0-byte PNG?)")
def _(d):
    sh(demo(f"--steps 5 {' '.join(TINY)} --no-plot --checkpoint ck.npz --quiet"), d)
    Path(d, "o").mkdir()
    rc = sh(demo("inside --checkpoint ck.npz --out o"), d)[0]
    before = Path(d, "o", "inside.png").stat().st_size
    sizes = []
    for delay in (1.6, 1.9, 2.2, 2.5, 2.8):
        p = subprocess.Popen([PY, f"{ROOT}/demo.py", "inside", "--checkpoint", "ck.npz", "--out", "o",
                              "--overwrite"], cwd=d, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        for line in p.stdout:
            if "layer 1" in line:
                time.sleep(delay / 10)
                p.send_signal(signal.SIGTERM)
                break
        out, err = p.communicate()
        sizes.append(Path(d, "o", "inside.png").stat().st_size if Path(d, "o", "inside.png").exists() else -1)
    return p.returncode, last(err), f"inside.png sizes after each signal: {sizes} (was {before})"


@case(5, "full disk during the sine plots")
def _(d):
    # a 'disk' that is full once the plots start: matplotlib's savefig fails with ENOSPC
    code = ("import errno, runpy, sys; import matplotlib.figure as F; "
            "F.Figure.savefig = lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, 'No space left on device')); "
            f"sys.argv = ['demo.py', '--steps', '5', *{TINY!r}, '--out', 'o']; "
            f"sys.path.insert(0, {str(ROOT)!r}); runpy.run_path({str(ROOT / 'demo.py')!r}, run_name='__main__')")
    p = subprocess.run([PY, "-c", code], cwd=d, env=ENV, capture_output=True, text=True, timeout=240)
    tr = "test RMSE" in p.stdout
    return p.returncode, last(p.stderr), f"o: {ls(Path(d) / 'o')}; 'test RMSE' printed: {tr}"


@case(6, "gradients with an RNN checkpoint at DIR/lstm.npz")
def _(d):
    sh(demo("adding --cell rnn --timesteps 4 --lstm-size 3 --minutes 0.01 --no-plot --out a --quiet"), d)
    os.rename(Path(d, "a", "rnn.npz"), Path(d, "a", "lstm.npz"))
    rc, out, err = sh(demo("gradients --timesteps 4 --lstm-size 3 --train-steps 3 --from a --no-plot"), d)
    lab = [l for l in out.splitlines() if l.startswith("LSTM after")]
    return rc, last(err), (lab[0][:60] if lab else "no 'LSTM after training' line")


for _args in ("adding --timesteps 10000000", "adding --lstm-size 100000", "adding --batch-size 100000000",
              "gradients --timesteps 10000000", "gradients --lstm-size 100000"):
    def _mk(a):
        @case(7, a)
        def _(d):
            rc, out, err = sh(demo(a + " --no-plot --minutes 0.01") if a.startswith("adding")
                              else demo(a + " --no-plot --train-steps 1"), d, timeout=120)
            return rc, last(err), ""
    _mk(_args)


@case(7, "python -m numpylstm.gradcheck | head -1")
def _(d):
    rc, out, err = sh(f"set -o pipefail; {PY} -m numpylstm.gradcheck | head -1", d)
    return rc, last(err), ""


@case(7, "python -m numpylstm.gradcheck --bugs | head -1")
def _(d):
    rc, out, err = sh(f"set -o pipefail; {PY} -m numpylstm.gradcheck --bugs | head -1", d)
    return rc, last(err), ""


@case(7, "python -m numpylstm.demos.baselines | head -1")
def _(d):
    rc, out, err = sh(f"set -o pipefail; {PY} -m numpylstm.demos.baselines | head -1", d)
    return rc, last(err), ""


def _chars_ck(d):
    Path(d, "t.txt").write_text(TEXT)
    sh(demo(f"chars --text t.txt --epochs 1 {' '.join(CH)} --no-plot --quiet --out o"), d)


@case(7, "cells into a read-only folder")
def _(d):
    _chars_ck(d)
    os.chmod(Path(d, "o"), 0o555)
    rc, out, err = sh(demo("cells --checkpoint o/chars.npz --text t.txt"), d)
    os.chmod(Path(d, "o"), 0o755)
    return rc, last(err), ""


@case(7, "cells --out ''")
def _(d):
    _chars_ck(d)
    rc, out, err = sh(demo("cells --checkpoint o/chars.npz --text t.txt --out ''"), d)
    return rc, last(err), ""


@case(7, "Ctrl-C while demo.py imports")
def _(d):
    seen = []
    for delay in (0.03, 0.06, 0.09, 0.12, 0.15, 0.2, 0.3):
        p = subprocess.Popen([PY, "-X", "importtime", f"{ROOT}/demo.py", "--steps", "1"], cwd=d, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate()
        err = "\n".join(l for l in err.splitlines() if not l.startswith("import time:"))
        seen.append((p.returncode, "traceback" if "Traceback" in err else last(err)[:40]))
    rcs = sorted({r for r, _ in seen})
    return "/".join(map(str, rcs)), "; ".join(sorted({e for _, e in seen})), ""


@case(7, "Ctrl-C during gradcheck --bugs")
def _(d):
    p = subprocess.Popen([PY, "-m", "numpylstm.gradcheck", "--bugs"], cwd=d, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate()
    return p.returncode, last(err), ""


for _cmd in ("--steps 5 --lstm-size 4 --timesteps 5 --no-plot --out o", "--help"):
    def _mk2(c):
        @case(7, f"demo.py {c.split()[0]} ... > /dev/full")
        def _(d):
            rc, out, err = sh(demo(c) + " > /dev/full", d)
            return rc, last(err), ""
    _mk2(_cmd)


@case(7, "python -m numpylstm.gradcheck > /dev/full")
def _(d):
    rc, out, err = sh(f"{PY} -m numpylstm.gradcheck > /dev/full", d)
    return rc, last(err), ""


def _big_ck(d):
    code = ("import json, numpy as np; from numpylstm import LSTMModel, Adam; "
            "from numpylstm.checkpoint import save_checkpoint; import zipfile; "
            "from numpylstm.demos.text import Vocab; v = Vocab('abc '); "
            "m = LSTMModel(4, 3, 4, head='all', loss='softmax_ce'); "
            "save_checkpoint('big.npz', m, None, user={'demo': 'chars', 'settings': {'epochs': 1}, 'text': {}}, "
            "extra={'vocab': v.to_array()})\n"
            "z = dict(np.load('big.npz')); meta = json.loads(str(z['meta'])); "
            "meta['model_config']['hidden_size'] = 10**6; z['meta'] = np.array(json.dumps(meta)); np.savez('big.npz', **z)")
    subprocess.run([PY, "-c", code], cwd=d, env=ENV, check=True, capture_output=True)


@case(7, "sample a checkpoint with hidden_size 10^6")
def _(d):
    _big_ck(d)
    rc, out, err = sh(demo("sample --checkpoint big.npz"), d, timeout=120)
    return rc, last(err), ""


@case(7, "cells a checkpoint with hidden_size 10^6")
def _(d):
    _big_ck(d)
    Path(d, "t.txt").write_text("abc " * 2000)
    rc, out, err = sh(demo("cells --checkpoint big.npz --text t.txt --out p.html"), d, timeout=120)
    return rc, last(err), ""


@case(8, "chars' resume hint pasted as printed (no --text)")
def _(d):
    Path(d, "t.txt").write_text(TEXT)
    p = subprocess.Popen([PY, f"{ROOT}/demo.py", "chars", "--text", "t.txt", "--minutes", "1", *CH, "--out", "o"],
                         cwd=d, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("step"):
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate()
    hint = err.strip().split("continue with ")[-1]
    rc, out2, err2 = sh(demo(f"chars {hint} --minutes 0.02"), d)
    return rc, f"hint: {last(err)} -> {last(err2)}", ""


@case(8, "inside's resume hint")
def _(d):
    p = subprocess.Popen([PY, f"{ROOT}/demo.py", "inside", "--out", "o"], cwd=d, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("step"):
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate()
    return p.returncode, last(err), ""


@case(8, "sample --temperature 1e-320")
def _(d):
    _chars_ck(d)
    rc, out, err = sh(demo("sample --checkpoint o/chars.npz --prime Hap --length 20 --temperature 1e-320"), d)
    return rc, last(err), out.strip()[:30]


for _t in ("/dev/null", "."):
    def _mk3(t):
        @case(8, f"chars --text {t}")
        def _(d):
            rc, out, err = sh(demo(f"chars --text {t} --epochs 1"), d)
            return rc, last(err), ""
    _mk3(_t)


@case(8, "python -m numpylstm.gradcheck -h")
def _(d):
    rc, out, err = sh(f"{PY} -m numpylstm.gradcheck -h", d)
    return rc, last(err) or out.strip().splitlines()[0][:80], ""


for _a in ("--orders 0", "--orders 1000", "--text short.txt"):
    def _mk4(a):
        @case(8, f"baselines {a}")
        def _(d):
            Path(d, "short.txt").write_text(TEXT[:3000])
            rc, out, err = sh(f"{PY} -m numpylstm.demos.baselines {a}", d)
            return rc, last(err), f"stdout lines: {len(out.splitlines())}"
    _mk4(_a)


@case(8, "a second signal of another kind (SIGTERM then SIGINT)")
def _(d):
    p = subprocess.Popen([PY, f"{ROOT}/demo.py", "--steps", "100000", *TINY, "--no-plot", "--checkpoint", "ck.npz",
                          "--checkpoint-every", "50"], cwd=d, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    while not Path(d, "ck.npz").exists():
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    time.sleep(0.002)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate()
    return p.returncode, last(err), ""


@case(8, "chars --keep-prob 1e-300")
def _(d):
    Path(d, "t.txt").write_text(TEXT)
    rc, out, err = sh(demo(f"chars --text t.txt --epochs 1 {' '.join(CH)} --keep-prob 1e-300"), d)
    return rc, last(err), ""


@case(8, "--resume ck --stop-at 5 with ck at step 10")
def _(d):
    sh(demo(f"--steps 20 {' '.join(TINY)} --no-plot --stop-at 10 --checkpoint ck.npz --quiet"), d)
    rc, out, err = sh(demo("--resume ck.npz --stop-at 5 --no-plot"), d)
    return rc, last(err) or out.strip().splitlines()[-1][:80], f"ck at step {ckstep(Path(d, 'ck.npz'))}"


@case(8, "--resume link.npz (a symlink)")
def _(d):
    sh(demo(f"--steps 20 {' '.join(TINY)} --no-plot --stop-at 10 --checkpoint real.npz --quiet"), d)
    os.symlink("real.npz", Path(d, "link.npz"))
    rc, out, err = sh(demo("--resume link.npz --no-plot --quiet"), d)
    return rc, last(err), (f"link.npz is a symlink: {Path(d, 'link.npz').is_symlink()}; real.npz at step "
                           f"{ckstep(Path(d, 'real.npz'))}")


@case(8, "chars --out ''")
def _(d):
    Path(d, "t.txt").write_text(TEXT)
    rc, out, err = sh(demo(f"chars --text t.txt --epochs 1 {' '.join(CH)} --no-plot --out ''"), d)
    return rc, last(err), f"runs/chars: {ls(Path(d) / 'runs' / 'chars')}"


def main():
    only = os.environ.get("ONLY")
    print(f"| # | case | exit | last stderr line | on disk |  (tree {ROOT})")
    print("|---|---|---|---|---|")
    for item, name, fn in CASES:
        if only and only not in name:
            continue
        with tempfile.TemporaryDirectory() as d:
            try:
                rc, err, disk = fn(d)
            except Exception as exc:  # a repro that itself breaks: say so
                rc, err, disk = "!", f"repro failed: {type(exc).__name__}: {exc}"[:120], ""
            disk = str(disk).replace(d, "D")
            err = str(err).replace(d, "D")
        print(f"| {item} | {name} | {rc} | {err} | {disk} |", flush=True)


if __name__ == "__main__":
    main()
