"""Numbers quoted in derivations/08_gradient_checking.md: how accurate (G1) and (G3) are, and why (G2) has a floor.

Run from the repository root:  PYTHONPATH=. python derivations/scripts/fd_accuracy.py

1. Fifteen random one-layer problems, shapes (N, T, D, H) from (1, 1, 1, 1) to (3, 12, 4, 8), loss
   L = sum_t <R_t, h_t> with random R_t and nonzero initial state. Every entry of dWx, dWh, db is compared
   with (G1) at eps = 1e-5 and with (G3) at eps = 1e-3; worst relative error (G2, floor 1e-3) per formula.
2. A correct gradient that a relative error without a floor would call wrong: token ids, a token that occurs
   only at the first of T = 20 steps, a loss on the last step only. Its row of dWx is tiny (~1e-8) because
   the gradient has to travel back 19 steps; the roundoff of f (~1e-13 absolute after the division by eps)
   is then a large *fraction* of it.
Everything in float64, against numpylstm/fast.py's lstm_backward_tm (tests hold it equal to textbook.py).
"""

import numpy as np

from numpylstm import fast

FLOOR = 1e-3
SHAPES = [(1, 1, 1, 1), (1, 2, 1, 1), (2, 1, 1, 2), (1, 3, 2, 1), (2, 2, 2, 2), (1, 4, 1, 3), (3, 3, 2, 2),
          (2, 5, 3, 3), (1, 6, 2, 4), (3, 4, 4, 4), (2, 8, 3, 5), (3, 6, 2, 6), (2, 10, 4, 6), (3, 9, 3, 7),
          (3, 12, 4, 8)]


def rel_error(a, n, floor=FLOOR):
    """(G2); floor=0 gives the plain relative error (0 where both are exactly 0)."""
    den = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
    return np.divide(np.abs(a - n), den, out=np.zeros_like(a), where=den > 0)


def g1(f, arr, k, eps):
    old = arr[k]
    arr[k] = old + eps
    fp = f()
    arr[k] = old - eps
    fm = f()
    arr[k] = old
    return (fp - fm) / (2 * eps)  # (G1)


def g3(f, arr, k, eps):
    return (4 * g1(f, arr, k, eps) - g1(f, arr, k, 2 * eps)) / 3  # (G3)


def numeric(f, params, formula, eps):
    out = []
    for p in params:
        n = np.zeros_like(p)
        for k in np.ndindex(p.shape):
            n[k] = formula(f, p, k, eps)
        out.append(n)
    return out


def random_problem(N, T, D, H, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, D))
    h0, c0 = rng.standard_normal((N, H)) * 0.5, rng.standard_normal((N, H)) * 0.5
    params = [rng.standard_normal((D, 4 * H)) * 0.5, rng.standard_normal((H, 4 * H)) * 0.5,
              rng.standard_normal(4 * H) * 0.5]
    R = rng.standard_normal((T, N, H))  # L = sum_t <R_t, h_t>, so dL/dh_t = R_t
    return x, h0, c0, params, R


def loss_fn(x, h0, c0, params, R):
    return lambda: float(np.sum(R * fast.lstm_forward_tm(x, h0, c0, *params)[0]))


def analytic(x, h0, c0, params, R):
    cache = fast.lstm_forward_tm(x, h0, c0, *params)[2]
    return fast.lstm_backward_tm(R, cache)[3:]


def worst(an, nu, floor=FLOOR):
    return max(float(rel_error(a, n, floor).max()) for a, n in zip(an, nu))


def fifteen_problems():
    w1 = w3 = 0.0
    for seed, shape in enumerate(SHAPES):
        prob = random_problem(*shape, seed)
        an, f = analytic(*prob), loss_fn(*prob)
        e1 = worst(an, numeric(f, prob[3], g1, 1e-5))
        e3 = worst(an, numeric(f, prob[3], g3, 1e-3))
        w1, w3 = max(w1, e1), max(w3, e3)
        print(f"  (N, T, D, H) = {shape}: (G1) eps 1e-5 {e1:.1e}   (G3) eps 1e-3 {e3:.1e}")
    print(f"worst over the {len(SHAPES)} problems: (G1) eps 1e-5 {w1:.1e}   (G3) eps 1e-3 {w3:.1e}")
    return w1, w3


def floor_example(T=20, N=2, H=4, V=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, (T, N))
    x[0] = 0  # token 0 occurs only at the first step
    Wx, Wh = rng.standard_normal((V, 4 * H)) * 0.5, rng.standard_normal((H, 4 * H)) * 0.5
    b = rng.standard_normal(4 * H) * 0.5
    b[H:2 * H] -= 1.0  # a forget gate that forgets: the gradient shrinks on its way back
    h0, c0 = rng.standard_normal((N, H)) * 0.5, rng.standard_normal((N, H)) * 0.5
    R = np.zeros((T, N, H))
    R[-1] = rng.standard_normal((N, H))  # the loss reads h_T only
    prob = (x, h0, c0, [Wx, Wh, b], R)
    a = analytic(*prob)[0][0]  # dWx row of token 0 = da_1 summed over the samples that read it
    f = loss_fn(*prob)
    n = np.array([g3(f, Wx, (0, k), 1e-3) for k in range(4 * H)])
    plain, floored = rel_error(a, n, 0.0).max(), rel_error(a, n).max()
    print(f"floor example (T = {T}, token 0 only at step 1, loss on h_T): |f| = {abs(f()):.2f}, "
          f"largest |dWx[0]| = {np.abs(a).max():.1e}, largest |a - n| = {np.abs(a - n).max():.1e}")
    print(f"  worst relative error without a floor {plain:.1e}, with floor 1e-3 (G2) {floored:.1e}")
    return np.abs(a).max(), np.abs(a - n).max(), plain, floored


if __name__ == "__main__":
    print("(G1) at eps 1e-5 against (G3) at eps 1e-3, worst relative error (G2) over dWx, dWh, db:")
    fifteen_problems()
    floor_example()
