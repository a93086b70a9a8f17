"""bpkit: a small reverse-mode autodiff engine on NumPy, for the book on backpropagation.

- :class:`Value`: scalar reverse mode (one node per number, the per-neuron view);
- :class:`Tensor`: array reverse mode (the matrix view), with :func:`no_grad`, :func:`debug`;
- :mod:`bpkit.functional` (also ``bpkit.F``): activations and losses;
- :func:`grad` (reverse mode) and :func:`jvp` (forward mode, dual numbers);
- :func:`gradcheck`: reverse mode against central finite differences.

``bpkit.nn``, ``bpkit.optim`` and ``bpkit.data`` are imported with the package.
``import bpkit`` needs NumPy alone; ``bpkit.symbolic`` (SymPy) and ``bpkit.draw``
(matplotlib) are imported on request.
"""

from . import data, functional, nn, optim
from . import functional as F
from .autodiff import grad
from .forward import jvp
from .gradcheck import gradcheck
from .scalar import Value
from .tensor import Tensor, debug, no_grad

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Value",
    "Tensor",
    "no_grad",
    "debug",
    "grad",
    "jvp",
    "gradcheck",
    "functional",
    "F",
    "nn",
    "optim",
    "data",
]
