"""One :class:`~gradstep.autograd.Function` per primitive, grouped by kind.

NumPy reports an overflow, a division by zero or an invalid operation inside a ufunc as a
``RuntimeWarning`` from the Python line that called it. PyTorch gives the same inf or NaN
silently (``gs.detect_anomaly()`` finds where one first appears), so the ops do too: one
warnings filter, installed once at import, ignores NumPy's RuntimeWarnings raised from
gradstep's op modules and its backward pass, and nothing else (a user's own NumPy code still
warns). It costs nothing per call, where ``np.errstate`` around each op would cost about a
microsecond, as much as a small op itself. A filter installed later (pytest's
``filterwarnings = error``) takes precedence, so the test suite still sees every such warning.
"""

import warnings

warnings.filterwarnings(
    "ignore", category=RuntimeWarning, module=r"gradstep\.(ops(\.\w+)?|autograd)$"
)
