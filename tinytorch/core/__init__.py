"""The framework core (modules 01-09): import from the submodules, e.g. `tinytorch.core.layers`."""

# NOTE: tensor.py and shape_ops.py import each other (Tensor's methods call the shape ops,
# which build Tensors). Loading tensor.py first, whichever core module is imported, takes
# the pair in the one order that works.
from tinytorch.core import tensor as _tensor  # noqa: F401
