"""One :class:`~gradstep.autograd.Function` per primitive, grouped by kind."""
