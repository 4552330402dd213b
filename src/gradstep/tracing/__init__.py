"""``gradstep.compile``: trace one training step once, then replay it as flat array calls.

A training step builds the same graph every time: the same ops on arrays of the same shapes.
Eager execution pays for that graph on every step (a Tensor and a node per op, a heap of
nodes waiting for their gradient, a dict of pending gradients). :func:`compile` runs the step
once under a tracer, which records each op's ``forward``, the backward pass's every decision
(which node, which input, where a broadcast gradient is summed back, which gradients add up),
and each call to a :func:`~gradstep.autograd.replayable` function (``optimizer.zero_grad()``,
``optimizer.step()``, a scheduler's ``step()``, ``clip_grad_norm_``). It then writes those
records as the body of one Python function, with every array in a local variable, and calls
that function from then on.

The replay calls the very same ``forward``/``backward`` methods on arrays in the same order as
eager execution, so its results are bit-identical to eager, in float32 and float64 alike; what
disappears is the graph construction around them.

What a trace cannot see, and what happens then:

* A new shape or dtype of an argument, a different Python scalar argument, grad mode, or a
  module switched between ``train()`` and ``eval()``: the step is traced again for that case
  (that call runs eagerly) and both traces are kept, up to ``max_traces``; beyond it the step
  runs eagerly with a one-line :class:`CompileWarning`.
* Python reading a tensor's value inside the step (``loss.item()``, ``float(t)``, ``if t:``,
  ``t.numpy()``): the step's control flow may depend on the data, so this case runs eagerly
  from then on, with a one-line warning. Return the loss tensor and call ``.item()`` outside.
* An array argument that no gradstep op ever receives (the step changed it with NumPy first):
  NumPy code is invisible to the tracer, so this case also runs eagerly, with a warning.
* Python state the step reads that is none of the above (a counter, a global flag, ``.data``
  of a tensor, code between ops that is not ``replayable``): frozen as it was during the trace,
  as in ``jax.jit`` or CUDA graphs. Keep such logic outside the compiled step.

Tensors that a compiled step returns are detached from any graph, on the first call too: the
backward belongs inside the step. Gradient arrays are fresh each step, as in eager mode.
"""

from gradstep.tracing.step import CompiledStep, CompileWarning, compile  # noqa: A004

__all__ = ["CompileWarning", "CompiledStep", "compile"]
