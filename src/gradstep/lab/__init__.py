"""The lecture made visible: error surfaces, critical points, backpropagation explained, and
the lecture's experiments on real data. Needs matplotlib (imported lazily)."""

from gradstep.lab.backprop import explain_gradient, format_explanation
from gradstep.lab.critical import classify_critical_point, hessian
from gradstep.lab.critical_points import (
    escape_direction,
    find_critical_point,
    inspect_critical_point,
)
from gradstep.lab.network_hessian import hvp, model_hessian
from gradstep.lab.surface import error_surface, gradient_descent_path, least_squares_line

__all__ = [
    "classify_critical_point",
    "escape_direction",
    "find_critical_point",
    "hvp",
    "inspect_critical_point",
    "model_hessian",
    "error_surface",
    "explain_gradient",
    "format_explanation",
    "gradient_descent_path",
    "hessian",
    "least_squares_line",
]
