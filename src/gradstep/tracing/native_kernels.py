"""The numba kernels a native step calls (see :mod:`gradstep.tracing.native`).

Each kernel works in place on arrays it is given (a step's work buffer, a parameter's slice of
its optimizer's flat buffer), so a compiled step allocates nothing. They are generic over the
dtype: numba compiles one version for float32 and one for float64, and every scalar a kernel
gets is already of the arrays' dtype (the generated step converts them), so float32 stays
float32 as in eager execution. Sums accumulate in float64 where eager sums pairwise, so their
last bits may differ from eager; everything elementwise does the same operations in the same
order as the NumPy op it replaces.

Matrix products call BLAS (numba's ``np.dot``) from :data:`BLAS_MIN` multiply-adds on and are
plain loops below it, where a BLAS call costs more than the arithmetic.

Only numba imports this module; an op names its kernels as strings (see ``Function.lower``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Multiply-adds from which a matrix product calls BLAS instead of looping (measured at (a)
#: and (b) of benchmarks/bench.py: a 32x16x1 product loops in 0.1 us, a BLAS call costs ~1 us).
BLAS_MIN = 16384

jit = njit(cache=True, nogil=True, error_model="numpy")
#: For dot products only: lets LLVM split a sum into vector lanes (a different but equally
#: accurate order, as BLAS's); measured 3.6 -> 0.5 us for (b)'s 256x32 @ 32x1 output layer.
#: Contraction (fused multiply-adds, as BLAS uses) keeps the numbers near eager's; code numba
#: compiles in a process rounds differently from the same code loaded from its cache, so a
#: step is always compiled by a child process and loaded (native_program.compile_now).
jit_dot = njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})


# --- matrix products ---------------------------------------------------------------------------
@jit_dot
def matmul_nt(a, b, out):
    """out = a @ b.T  (a (n, k), b (m, k))."""
    n, k = a.shape
    m = b.shape[0]
    if n * k * m >= BLAS_MIN:
        np.dot(a, b.T, out)
        return
    for i in range(n):
        for j in range(m):
            s = a[i, 0] * b[j, 0]
            for q in range(1, k):
                s += a[i, q] * b[j, q]
            out[i, j] = s


@jit
def matmul_nn(a, b, out):
    """out = a @ b  (a (n, m), b (m, k))."""
    n, m = a.shape
    k = b.shape[1]
    if n * k * m >= BLAS_MIN:
        np.dot(a, b, out)
        return
    for i in range(n):
        for j in range(k):
            out[i, j] = a[i, 0] * b[0, j]
        for q in range(1, m):
            aiq = a[i, q]
            for j in range(k):
                out[i, j] += aiq * b[q, j]


@jit
def matmul_tn(a, b, out):
    """out = a.T @ b  (a (n, m), b (n, k))."""
    n, m = a.shape
    k = b.shape[1]
    if n * k * m >= BLAS_MIN:
        np.dot(a.T, b, out)
        return
    if k >= m:  # the inner loop along b's rows (contiguous), the longer side
        for i in range(m):
            for j in range(k):
                out[i, j] = a[0, i] * b[0, j]
        for r in range(1, n):
            for i in range(m):
                ari = a[r, i]
                for j in range(k):
                    out[i, j] += ari * b[r, j]
        return
    for j in range(k):  # else along a's rows (a gradient for a 1-column input: k = 1)
        for i in range(m):
            out[i, j] = a[0, i] * b[0, j]
        for r in range(1, n):
            brj = b[r, j]
            for i in range(m):
                out[i, j] += a[r, i] * brj


@jit
def add_rows(y, b):
    """y[i, :] += b (a bias)."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += b[j]


@jit
def sum_rows(g, out):
    """out = g.sum(axis=0), row after row as NumPy adds them."""
    for j in range(g.shape[1]):
        out[j] = g[0, j]
    for i in range(1, g.shape[0]):
        for j in range(g.shape[1]):
            out[j] += g[i, j]


@jit
def add_into(dst, src):
    """dst += src (a second gradient for the same value)."""
    d = dst.reshape(-1)
    s = src.reshape(-1)
    for i in range(d.size):
        d[i] += s[i]


# --- activations -------------------------------------------------------------------------------
@jit
def sigmoid_forward(x, y):
    """The split-by-sign sigmoid of ``stable_sigmoid``: no overflow, full precision in the tails."""
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    for i in range(xf.size):
        v = xf[i]
        e = np.exp(-abs(v))
        if v >= 0:
            yf[i] = 1 / (1 + e)
        else:
            yf[i] = e / (1 + e)


# Cephes' expf: exp(t) = 2^k exp(r), r = t - k ln2 (ln2 split in two so k ln2 is exact), and
# a degree-7 polynomial for exp(r) on |r| <= ln2 / 2.
_F = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _F(1.4426950408889634), _F(0.693359375), _F(-2.12194440e-4)
_P = (_F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3), _F(4.1665795894e-2))
_P4, _P5, _ONE, _HALF, _FAR = _F(1.6666665459e-1), _F(5.0000001201e-1), _F(1), _F(0.5), _F(87)


@jit
def sigmoid_forward_f32(x, y, tmp):
    """The float32 sigmoid with an exp that vectorizes: numba's exp here is libm's, one scalar
    call per element (no SVML in this llvmlite), which was half of a step at (a); this one is
    Cephes' expf, at most 3 ulp from NumPy's sigmoid (measured on 1.6M points over +-120).
    Beyond |x| = 87, where 2^k leaves float32's normal range, and for NaN, libm's exp takes
    over. ``tmp`` is float32 work of x's size (its bits hold 2^k)."""
    xf, yf, tf = x.reshape(-1), y.reshape(-1), tmp.reshape(-1)
    ti = tf.view(np.int32)
    far = 0
    for i in range(xf.size):  # vectorized: e = exp(-|x|) = 2^k p(r)
        t = -abs(xf[i])
        far += not (t > -_FAR)
        if t < -_FAR:
            t = -_FAR
        k = np.floor(t * _LOG2E + _HALF)
        r = (t - k * _LN2_HI) - k * _LN2_LO
        p = ((((_P[0] * r + _P[1]) * r + _P[2]) * r + _P[3]) * r + _P4) * r + _P5
        yf[i] = (p * (r * r) + r) + _ONE
        ti[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for i in range(xf.size):
        e = yf[i] * tf[i]
        yf[i] = (_ONE if xf[i] >= 0 else e) / (_ONE + e)
    if far:  # rare: a separate loop, so the common case never pays for libm
        for i in range(xf.size):
            v = xf[i]
            if not (abs(v) < _FAR):
                e = np.exp(-abs(v))
                yf[i] = (_ONE if v >= 0 else e) / (_ONE + e)


@jit
def sigmoid_backward(g, y, gx):
    gf, yf, out = g.reshape(-1), y.reshape(-1), gx.reshape(-1)
    for i in range(gf.size):
        out[i] = (gf[i] * yf[i]) * (1 - yf[i])


@jit
def relu_forward(x, y):
    xf, yf = x.reshape(-1), y.reshape(-1)
    for i in range(xf.size):
        v = xf[i]
        yf[i] = v if (v > 0 or v != v) else 0  # NaN stays NaN, as np.maximum


@jit
def relu_backward(g, y, gx):
    """g where the input was > 0 (the output is > 0 exactly there), else 0 (inf upstream too)."""
    gf, yf, out = g.reshape(-1), y.reshape(-1), gx.reshape(-1)
    for i in range(gf.size):
        out[i] = gf[i] if yf[i] > 0 else 0


@jit
def leaky_relu_forward(x, slope, y):
    """x where x > 0, else slope x (x * 1 and x * slope, as LeakyReLU's scale array gives)."""
    xf, yf = x.reshape(-1), y.reshape(-1)
    for i in range(xf.size):
        v = xf[i]
        yf[i] = v if v > 0 else v * slope


@jit
def leaky_relu_backward(g, x, slope, gx):
    gf, xf, out = g.reshape(-1), x.reshape(-1), gx.reshape(-1)
    for i in range(gf.size):
        out[i] = gf[i] if xf[i] > 0 else gf[i] * slope


@jit
def tanh_forward(x, y):
    xf, yf = x.reshape(-1), y.reshape(-1)
    for i in range(xf.size):
        yf[i] = math.tanh(xf[i])


@jit
def tanh_backward(g, y, gx):
    gf, yf, out = g.reshape(-1), y.reshape(-1), gx.reshape(-1)
    for i in range(gf.size):
        out[i] = gf[i] * (1 - yf[i] * yf[i])


# --- losses (mean reduction) -------------------------------------------------------------------
@jit
def _negated_into(gaf, gb):
    """gb = -ga (a difference loss's gradient for its target), when it is asked for."""
    if gb is not None:
        gbf = gb.reshape(-1)
        for i in range(gaf.size):
            gbf[i] = -gaf[i]


@jit
def mse_forward(a, b, d):
    """d = a - b (kept for backward); returns mean(d^2), summed in float64."""
    af, bf, df = a.reshape(-1), b.reshape(-1), d.reshape(-1)
    s = 0.0
    for i in range(af.size):
        v = af[i] - bf[i]
        df[i] = v
        s += v * v
    return s / af.size


@jit
def mse_backward(scale, d, ga, gb):
    """ga = 2 d * scale (scale = upstream / n, of d's dtype); gb = -ga when asked for."""
    df, gaf = d.reshape(-1), ga.reshape(-1)
    for i in range(df.size):
        gaf[i] = (df[i] + df[i]) * scale
    _negated_into(gaf, gb)


@jit
def l1_forward(a, b, d):
    """d = a - b (kept for backward); returns mean(|d|), summed in float64."""
    af, bf, df = a.reshape(-1), b.reshape(-1), d.reshape(-1)
    s = 0.0
    for i in range(af.size):
        v = af[i] - bf[i]
        df[i] = v
        s += abs(v)
    return s / af.size


@jit
def l1_backward(scale, d, ga, gb):
    """ga = sign(d) * scale (0 at d = 0, NaN at NaN, as np.sign); gb = -ga when asked for."""
    df, gaf = d.reshape(-1), ga.reshape(-1)
    for i in range(df.size):
        v = df[i]
        gaf[i] = (scale if v > 0 else (-scale if v < 0 else v * scale)) if v == v else v
    _negated_into(gaf, gb)


@jit
def huber_forward(a, b, delta, d):
    """d = a - b (kept); returns the mean of d^2 / 2 inside |d| < delta and
    delta (|d| - delta / 2) outside, summed in float64."""
    af, bf, df = a.reshape(-1), b.reshape(-1), d.reshape(-1)
    half = delta * 0.5
    s = 0.0
    for i in range(af.size):
        v = af[i] - bf[i]
        df[i] = v
        av = abs(v)
        s += 0.5 * v * v if av < delta else delta * (av - half)
    return s / af.size


@jit
def huber_backward(scale, d, delta, ga, gb):
    """ga = clip(d, -delta, delta) * scale; gb = -ga when asked for."""
    df, gaf = d.reshape(-1), ga.reshape(-1)
    for i in range(df.size):
        v = df[i]
        gaf[i] = (delta if v > delta else (-delta if v < -delta else v)) * scale
    _negated_into(gaf, gb)


@jit
def labels_outside(labels, c, status):
    """status = (index, label) of the first label outside [0, c); True if there is one."""
    for i in range(labels.size):
        v = labels[i]
        if v < 0 or v >= c:
            status[0] = i
            status[1] = v
            return True
    return False


@jit
def cross_entropy_forward(logits, labels, logp):
    """logp = log_softmax(logits) row by row (max subtracted first, as stable_log_softmax);
    returns the mean of -logp[label], summed in float64."""
    n, c = logits.shape
    zero = np.zeros(1, logits.dtype)[0]
    total = 0.0
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, c):
            if logits[i, j] > m or m != m:
                m = logits[i, j]
        if not np.isfinite(m):
            m = zero
        s = zero
        for j in range(c):
            v = logits[i, j] - m
            logp[i, j] = v
            s += np.exp(v)
        lse = np.log(s)
        for j in range(c):
            logp[i, j] = logp[i, j] - lse
        total -= logp[i, labels[i]]
    return total / n


@jit
def cross_entropy_backward(scale, logp, labels, gx):
    """gx = (softmax - onehot(label)) * scale, scale = upstream / n of the dtype."""
    n, c = logp.shape
    for i in range(n):
        for j in range(c):
            gx[i, j] = np.exp(logp[i, j])
        gx[i, labels[i]] -= 1
        for j in range(c):
            gx[i, j] *= scale


# --- optimizer updates on a whole flat buffer ---------------------------------------------------
@jit
def sgd(p, g, lr):
    for i in range(p.size):
        p[i] -= g[i] * lr


@jit
def sgd_decay(p, g, lr, momentum, undamped, wd, nesterov, first):
    """SGD with weight decay and no momentum: p -= (g + wd p) lr."""
    for i in range(p.size):
        p[i] -= (g[i] + wd * p[i]) * lr


@jit
def sgd_momentum(p, g, buf, lr, momentum, undamped, wd, nesterov, first):
    """PyTorch's SGD with momentum: b <- momentum b + (1 - dampening) g (b starts as g)."""
    for i in range(p.size):
        gi = g[i]
        if wd != 0:
            gi = gi + wd * p[i]
        b = gi if first else buf[i] * momentum + gi * undamped
        buf[i] = b
        p[i] -= (gi + b * momentum if nesterov else b) * lr


@jit
def adam(p, g, m, v, vmax, omb1, beta2, omb2, bc2, eps, step_size, wd, decay, amsgrad):
    """Adam/AdamW as Adam._update (decay = 1 - lr wd for AdamW, else 1 and wd is coupled)."""
    for i in range(p.size):
        gi = g[i]
        if decay != 1:
            p[i] *= decay
        elif wd != 0:
            gi = gi + wd * p[i]
        mi = m[i] + (gi - m[i]) * omb1
        m[i] = mi
        vi = v[i] * beta2 + (gi * omb2) * gi
        v[i] = vi
        if amsgrad:
            if vmax[i] > vi:
                vi = vmax[i]
            vmax[i] = vi
        denom = np.sqrt(vi) / bc2 + eps
        p[i] -= (mi / denom) * step_size


@jit
def rmsprop(p, g, sq, ga, buf, lr, alpha, one_minus_alpha, eps, wd, momentum, centered):
    for i in range(p.size):
        gi = g[i]
        if wd != 0:
            gi = gi + wd * p[i]
        s = sq[i] * alpha + (one_minus_alpha * gi) * gi
        sq[i] = s
        if centered:
            a = ga[i] + (gi - ga[i]) * one_minus_alpha
            ga[i] = a
            avg = np.sqrt(s - a * a) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum > 0:
            b = buf[i] * momentum + gi / avg
            buf[i] = b
            p[i] -= lr * b
        else:
            p[i] -= lr * (gi / avg)


@jit
def adagrad(p, g, acc, clr, eps, wd):
    for i in range(p.size):
        gi = g[i]
        if wd != 0:
            gi = gi + wd * p[i]
        s = acc[i] + gi * gi
        acc[i] = s
        p[i] -= clr * (gi / (np.sqrt(s) + eps))
