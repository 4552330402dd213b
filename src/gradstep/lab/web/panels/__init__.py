"""The lab's panels: one module each (its routes and its page), one URL each.

A panel module ``panels/<module>.py`` provides ``routes(lab) -> list[Route]`` for its page
``/<name>`` and its API under ``/api/<name>/``; its page is ``templates/<module>.html.j2`` and
its script ``static/<module>.js`` (on top of the shared ``static/lab.js``). Every number a page
shows is computed on the server by a function of ``gradstep.lab``, so a test can check the page
against the library. Every panel offers the figure as PNG and its model as a checkpoint.
"""

#: URL name -> (module, title), in the order the index lists them.
PANELS = {
    "surface": ("surface", "The error surface and gradient descent on it"),
    "one-parameter": ("one_parameter", "Gradient descent on one parameter, and a local minimum"),
    "piecewise": ("piecewise", "A curve built from sigmoids or ReLUs, by hand or by training"),
    "models": ("models", "The lecture's experiment: models on the Seattle data, trained live"),
    "backprop": ("backprop", "Backpropagation: one weight's gradient, pass by pass"),
    "critical": ("critical", "When the gradient is small: saddle points and the exact Hessian"),
    "optimizers": ("optimizers", "Optimizers on a narrow valley"),
}
