"""Whole-model verification: Freivalds on every linear layer of a forward pass.

The provider returns the model's output and a trace with the output of each
linear layer (torch ``nn.Linear``/``nn.Conv2d`` calls; JAX ``dot_general``
and ``conv_general_dilated`` equations, once per loop iteration). The
verifier replays the forward pass itself, but instead of computing a linear
layer it checks the claimed output against the input the layer actually
receives in the replay (and the consumer's own weights) with Freivalds, then
continues from a copy of the accepted claim (from the honest output if the
check fails). Everything between linear layers (activations, norms, softmax,
attention products, other products) is recomputed by the verifier, which
keeps it honest and is cheap for models whose FLOPs are in their linear
layers. Idea as in Slalom (Tramer & Boneh, ICLR 2019), with float tolerances
instead of F_p.

The result is one :class:`~vcompute.core.Verdict` whose ``details`` hold the
per-layer verdicts, the first bad layer, what was recomputed, and
``verify_s`` (plus ``verify_over_inference`` when the inference time is given).

Who is at fault: the trace and the claimed output are the provider's
evidence, and any problem with them is a rejected verdict with a reason. The
module or function, its inputs and the seed are the caller's: misuse (inputs
not a tuple, a construct the verifier refuses, an unsupported dtype) raises
``TypeError``/``ValueError`` and never becomes a rejection. What is covered
and what is refused: ``proofs/freivalds.md`` (claims V2-V5).
"""

from __future__ import annotations

from vcompute.verify.freivalds.model._jax import BATCHED_MODES, JaxModelVerifier, verify_jax_model
from vcompute.verify.freivalds.model._torch import FUNCTIONAL_MODES, TorchModelVerifier, verify_torch_model

__all__ = ["TorchModelVerifier", "JaxModelVerifier", "verify_torch_model", "verify_jax_model",
           "BATCHED_MODES", "FUNCTIONAL_MODES"]
