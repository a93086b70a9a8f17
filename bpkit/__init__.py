"""bpkit: a small reverse-mode autodiff engine on NumPy, for the book on backpropagation.

- :class:`Value`: scalar reverse mode (one node per number, the per-neuron view);
- :class:`Tensor`: array reverse mode (the matrix view), with :func:`no_grad`, :func:`debug`;
- :mod:`bpkit.functional` (also ``bpkit.F``): activations and losses;
- :func:`grad` (composes: ``grad(grad(f))``), :func:`jvp` (forward mode), :func:`hvp`
  (Hessian-vector products), :func:`jacobian`, :func:`hessian`, :func:`checkpoint`;
- :mod:`bpkit.ops`: the primitives, each with its forward, VJPs and JVPs, defined once;
- :func:`gradcheck`: reverse mode against central finite differences.

``import bpkit`` needs NumPy alone (it imports nn, optim and data); ``bpkit.symbolic``
(SymPy) and ``bpkit.draw`` (matplotlib) are imported on request.
"""

from . import data, functional, nn, ops, optim
from . import functional as F
from .engine import debug, no_grad, topological_order
from .gradcheck import gradcheck
from .scalar import Value
from .tensor import Tensor
from .transforms import checkpoint, grad, hessian, hvp, jacobian, jvp

__version__ = "0.2.0"

__all__ = [
    "__version__", "Value", "Tensor", "no_grad", "debug", "topological_order",
    "grad", "jvp", "hvp", "jacobian", "hessian", "checkpoint", "gradcheck",
    "functional", "F", "nn", "optim", "ops", "data",
]
