"""The maths of trust schemes in aggregate (numpy only; like Opacus's accountants).

What voting, spot-checking and adaptive replication cost and how often they
err, as closed forms and seeded Monte-Carlo models over abstract answers:

- :mod:`~vcompute.trust.voting`: Sarmenta's closed-form error and cost of
  voting, spot-checking and credibility;
- :mod:`~vcompute.trust.correlated`: bounds for colluders who coordinate when
  to cheat;
- :mod:`~vcompute.trust.policies`: adaptive replication policies
  (:data:`POLICIES`: fixed, BOINC's consecutive-valid and error-rate rules,
  credibility);
- :mod:`~vcompute.trust.montecarlo`: Monte-Carlo models checked against the
  closed forms.

It imports neither :mod:`vcompute.verify` nor :mod:`vcompute.market`; both use it.
"""

from vcompute.trust.policies import POLICIES, ReplicationPolicy, create_policy

__all__ = ["POLICIES", "ReplicationPolicy", "create_policy"]
