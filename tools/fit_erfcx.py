"""The coefficients of `ERFCX_P` in src/models/gelu_kernel.rs.

p(q) ~ erfcx(a) * (1 + 2a) with q = (a - 2) / (a + 2): a least-squares Chebyshev fit of degree 9
at 400 Chebyshev nodes of q in [-1, 0.67] (a in [0, 10.1]) against mpmath at 30 digits,
converted to the monomial basis and rounded to f32. Prints the coefficients (constant term
first) and the largest relative error on a fine grid, in f64 and with f32 Horner evaluation.

    pip install numpy mpmath && python tools/fit_erfcx.py
"""

import mpmath as mp
import numpy as np
from numpy.polynomial import chebyshev, polynomial

mp.mp.dps = 30
Q_MIN, Q_MAX, DEGREE, NODES = -1.0, 0.67, 9, 400


def target(q):
    """erfcx(a) (1 + 2a) at a = 2 (1 + q) / (1 - q)."""
    a = 2 * (1 + mp.mpf(q)) / (1 - mp.mpf(q))
    return float(mp.erfc(a) * mp.exp(a * a) * (1 + 2 * a))


k = np.arange(NODES)
nodes = (Q_MIN + Q_MAX) / 2 + (Q_MAX - Q_MIN) / 2 * np.cos(np.pi * (k + 0.5) / NODES)
fit = chebyshev.Chebyshev.fit(nodes, [target(q) for q in nodes], DEGREE, domain=[Q_MIN, Q_MAX])
coefficients = fit.convert(kind=polynomial.Polynomial, domain=[-1, 1], window=[-1, 1]).coef
f32 = [np.float32(c) for c in coefficients]

grid = np.linspace(Q_MIN, Q_MAX, 4001)
exact = np.array([target(q) for q in grid])
horner = np.full(grid.shape, f32[-1], dtype=np.float32)
for c in f32[-2::-1]:
    horner = (horner * grid.astype(np.float32) + c).astype(np.float32)
print("coefficients:", ", ".join(repr(float(c)) for c in f32))
print("relative error, f64: %.2e" % np.max(np.abs(polynomial.polyval(grid, coefficients) - exact) / exact))
print("relative error, f32 Horner: %.2e" % np.max(np.abs(horner - exact) / exact))
