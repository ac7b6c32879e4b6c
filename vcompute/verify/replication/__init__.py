"""Redundant execution: replicas compared, known answers and re-execution spot-checks.

- :mod:`~vcompute.verify.replication.scheme`: :class:`Replication`
  (k replicas, a quorum, one provider one vote);
- :mod:`~vcompute.verify.replication.equality`: when two answers count as the
  same (bitwise, tolerance, homogeneous redundancy);
- :mod:`~vcompute.verify.replication.spotcheck`: :class:`SpotCheck` and
  :class:`KnownAnswers`;
- :mod:`~vcompute.verify.replication.determinism`: the honest divergence
  between stacks that calibrates a tolerance.

The error and cost of voting in aggregate is maths, in :mod:`vcompute.trust`.
"""

from vcompute.verify.replication.scheme import (Replication, check_call, expected_dtype, expected_kind,
                                                expected_shape, make_equality, provider_identity, screen_output)

__all__ = ["Replication", "expected_shape", "expected_kind", "expected_dtype", "screen_output", "make_equality",
           "provider_identity", "check_call"]
