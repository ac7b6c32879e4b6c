"""Provider behaviours: one registry, keyed per job kind.

A behaviour is how a provider computes a job's output: ``honest`` or an
adversary. Every behaviour is registered once, as ``"<kind>/<name>"``
(``"matmul/skip_k"``, ``"generate/fewer_layers"``, ``"train/truncate"``);
:meth:`BehaviourRegistry.of` looks one up by ``(kind, name)`` and
:meth:`BehaviourRegistry.of_kind` lists a kind's. Each kind calls its
behaviours with its own convention (:meth:`~vcompute.workloads.kinds.JobKind.execute`
wraps the result into a claim):

=============  ==================================================  ==========================================
kind           behaviour signature                                 defined in
=============  ==================================================  ==========================================
``matmul``     ``(job, rng, **params) -> output``                  :mod:`vcompute.workloads.behaviours`,
                                                                   :mod:`~vcompute.workloads.matmul_adversaries`,
                                                                   :mod:`~vcompute.workloads.collusion`
``forward``    ``(job, rng, **params) -> (output, trace)``         :mod:`vcompute.workloads.kinds.forward`
``generate``   ``(job, rng, *, key, **params) -> Generation``      :mod:`vcompute.workloads.lm.adversaries`
``train``      ``(job, provider, rng, **params) -> Spoof``         :mod:`vcompute.workloads.training.pol.adversaries`
=============  ==================================================  ==========================================

Third-party behaviours come in through the ``vcompute.behaviours``
entry-point group, named ``"<kind>/<name>"``.

Deprecated names (still resolved, not listed): a bare matmul name
(``"skip_k"``) means ``"matmul/skip_k"``, and ``"generate.<name>"`` means
``"generate/<name>"``. A bare third-party name from an entry point stays as
registered (a matmul behaviour, as before kinds were registered).

Example:
    >>> BEHAVIOURS.of("matmul", "skip_k") is BEHAVIOURS.get("skip_k")
    True
    >>> "matmul/skip_k" in BEHAVIOURS.of_kind("matmul") or "skip_k" in BEHAVIOURS.of_kind("matmul")
    True
"""

from __future__ import annotations

from typing import Any

from vcompute.core.registry import Registry, UnknownPluginError

__all__ = ["BEHAVIOURS", "BehaviourRegistry"]


class BehaviourRegistry(Registry):
    """A :class:`~vcompute.core.registry.Registry` of ``"<kind>/<name>"`` entries with deprecated aliases.

    Args:
        kind: what the entries are, for messages.
        group: the entry-point group.
    """

    def __init__(self, kind: str, group: str | None) -> None:
        super().__init__(kind, group)
        self._aliases: dict[str, str] = {}

    def alias(self, old: str, new: str) -> None:
        """Resolve the deprecated name ``old`` to ``new`` (not listed by :meth:`names`)."""
        self._aliases[old] = new

    def _canonical(self, name: Any) -> Any:
        if type(name) is str and name not in self._entries and name in self._aliases:
            return self._aliases[name]
        return name

    def __contains__(self, name: object) -> bool:
        self._scan()
        return self._canonical(name) in self._entries

    def get(self, name: str) -> Any:
        """The entry called ``name`` (a deprecated alias resolves to its ``"<kind>/<name>"`` entry).

        Raises:
            UnknownPluginError: naming the known entries.
        """
        self._scan()
        return super().get(self._canonical(name))

    def of(self, kind: str, name: str) -> Any:
        """The behaviour ``name`` of job kind ``kind``.

        Raises:
            UnknownPluginError: naming the kind's behaviours.
        """
        if type(kind) is not str or type(name) is not str:
            raise TypeError(f"kind and behaviour names must be str, got {type(kind).__name__}, "
                            f"{type(name).__name__}")
        key = f"{kind}/{name}"
        if key not in self:
            raise UnknownPluginError(f"unknown {kind} behaviour {name!r}; known {kind} behaviours: "
                                     f"{', '.join(self.of_kind(kind)) or '(none)'}")
        return self.get(key)

    def of_kind(self, kind: str) -> list[str]:
        """Names (without the ``"<kind>/"`` prefix) of the behaviours of ``kind``, sorted."""
        prefix = f"{kind}/"
        return [n[len(prefix):] for n in self.names() if n.startswith(prefix)]


#: Provider behaviours of every job kind, as ``"<kind>/<name>"`` (entry-point group ``vcompute.behaviours``).
BEHAVIOURS: BehaviourRegistry = BehaviourRegistry("behaviour", group="vcompute.behaviours")

_MATMUL = {
    **{n: "vcompute.workloads.behaviours" for n in
       ("honest", "corrupt_entry", "low_precision", "skip_k", "random_output")},
    **{n: "vcompute.workloads.matmul_adversaries" for n in
       ("cancelling_pair", "rank_one", "low_precision_fp8", "replay", "nan_inject", "inf_inject", "shape_lie",
        "dtype_lie")},
    **{n: "vcompute.workloads.collusion" for n in ("colluding", "nan_output", "wrong_shape")},
}
for _name, _mod in _MATMUL.items():
    BEHAVIOURS.register(f"matmul/{_name}", f"{_mod}:{_name}")
    BEHAVIOURS.alias(_name, f"matmul/{_name}")

for _name in ("honest", "random_output", "swap_weights", "low_precision", "skip_layer"):
    BEHAVIOURS.register(f"forward/{_name}", f"vcompute.workloads.kinds.forward:{_name}")

_GENERATE = ("honest", "other_model", "fewer_layers", "weight_noise", "quantised", "low_precision",
             "prompt_altered", "prompt_truncated", "short_context", "other_seed", "other_temperature",
             "other_top_p", "greedy_for_sampled", "draft_model", "other_prompt_replay", "token_replaced",
             "extended_short_run", "malformed")
for _name in _GENERATE:
    BEHAVIOURS.register(f"generate/{_name}", f"vcompute.workloads.lm.adversaries:{_name}")
    BEHAVIOURS.alias(f"generate.{_name}", f"generate/{_name}")

# The PoL spoofs still live with their verifier (the layout move puts provers beside their workloads);
# a path, not an import, so workloads import nothing from verify.
for _name in ("honest", "replay", "interpolate", "truncate", "hparam_lie", "data_substitution", "zhang", "fang",
              "fang_hparams", "swap_final", "low_precision"):
    BEHAVIOURS.register(f"train/{_name}", f"vcompute.workloads.training.pol.adversaries:{_name}")
del _name, _mod
