"""The compiled step-finding kernel (numba): the rows of a cycler stream walked once into steps.

Imported by :func:`.steps.find_steps` on first use: loading numba takes a third of a second.
"""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def scan(t, v, i, cycle, step, threshold, cv_tolerance, cc_tolerance):
    """The steps of the rows: (first row, sign, CV?, ∫i dt, ∫i·v dt, min V, max V) per step.

    One walk gives each row its sign (a quiet row continuing a CV hold takes the hold's: module
    doc) and cuts the rows into phases (same cycle, step number and sign) while taking each
    phase's CC level and extreme voltage; each phase, still in cache, is then split into steps
    by :func:`split`.  Per-step arrays are sized for the worst case (one step per row) and cut:
    untouched, their pages cost nothing.
    """
    n = len(t)
    first, cv = np.empty(n, np.int64), np.empty(n, np.bool_)
    charge, energy, v_min, v_max = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    steps = (first, cv, charge, energy, v_min, v_max)
    sign = np.empty(n, np.int8)
    k, a, active = 0, 0, -1  # steps so far, the phase's first row, the last row above the threshold
    level, extreme = 0.0, 0.0
    for r in range(n):
        x = i[r]
        s = 0
        if x > threshold or x < -threshold:
            s, active = (1 if x > 0 else -1), r
        elif x != 0 and active >= 0:
            held, same = sign[active], cycle[r] == cycle[active] and step[r] == step[active]
            if same and (x > 0) == (held > 0) and abs(v[r] - v[active]) <= cv_tolerance:
                s = held
        sign[r] = s
        if r > 0 and (s != sign[r - 1] or cycle[r] != cycle[r - 1] or step[r] != step[r - 1]):
            k = split(t, v, i, a, r, sign[a], level * (1.0 - cc_tolerance), extreme, cv_tolerance, steps, k)
            a = r
        if r == a:
            level, extreme = abs(x), v[r]
        else:
            level = max(level, abs(x))
            extreme = max(extreme, v[r]) if s > 0 else min(extreme, v[r])
    if n:
        k = split(t, v, i, a, n, sign[a], level * (1.0 - cc_tolerance), extreme, cv_tolerance, steps, k)
    return (
        first[:k].copy(),
        sign[first[:k]],
        cv[:k].copy(),
        charge[:k].copy(),
        energy[:k].copy(),
        v_min[:k].copy(),
        v_max[:k].copy(),
    )


@numba.njit(cache=True, nogil=True, inline="always")
def split(t, v, i, a, b, s, level, extreme, cv_tolerance, steps, k):
    """Cut phase rows a..b−1 where rows start or stop being CV; sum each step into slot k on; the next k."""
    first, cv, charge, energy, v_min, v_max = steps
    r = a
    while r < b:
        now = s != 0 and abs(v[r] - extreme) <= cv_tolerance and abs(i[r]) < level
        q = e = 0.0
        lo = hi = v[r]
        first[k], cv[k] = r, now
        while True:
            w = i[r] * (t[r] - t[r - 1]) if r > 0 else 0.0
            q += w
            e += w * v[r]
            lo, hi = min(lo, v[r]), max(hi, v[r])
            r += 1
            if r == b or (s != 0 and abs(v[r] - extreme) <= cv_tolerance and abs(i[r]) < level) != now:
                break
        charge[k], energy[k], v_min[k], v_max[k] = q, e, lo, hi
        k += 1
    return k
