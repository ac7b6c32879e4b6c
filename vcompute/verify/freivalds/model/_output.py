"""The parts of a whole-model verdict shared by torch and JAX: the final-output comparison and the summary."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, dtype_name, plain, to_numpy
from vcompute.core.types import Cost, Verdict
from vcompute.verify.screening import exact_array_type

SCHEME = "freivalds-model"

#: Largest gap a claimed final output may have from the replay, relative to the output's largest entry, by
#: dtype: about 100 float32 ulps, and 4 units of the output's own rounding for halves (glue on other
#: hardware rounds its last operation differently; a half cannot be closer than its own rounding).
OUTPUT_RTOL = {"float64": 1e-5, "float32": 1e-5, "float16": 2.0**-9, "bfloat16": 2.0**-6}


def plain_list(x: Any) -> list | None:
    """The items of a list or tuple read from its storage (a subclass's ``__iter__``/``__len__`` can lie), or None."""
    # issubclass(type(x), ...), never isinstance: isinstance believes an object's __class__ property
    if issubclass(type(x), list):
        return list.copy(x)
    if issubclass(type(x), tuple):
        return list(tuple.__iter__(x))
    return None


def output_leaves(x: Any) -> list:
    """The arrays of a (nested) model output: lists and tuples in order, dicts by sorted key (as JAX flattens)."""
    if issubclass(type(x), dict):
        keys = list(dict.keys(x))
        try:
            keys = sorted(keys)
        except TypeError:
            pass
        return [leaf for k in keys for leaf in output_leaves(dict.__getitem__(x, k))]
    items = plain_list(x)
    if items is not None:
        return [leaf for item in items for leaf in output_leaves(item)]
    return [] if x is None else [x]


def final_output_problem(claimed: Any, ours: Any) -> str | None:
    """Compare the claimed model output with the replay's (glue is not bit-reproducible across hardware).

    A model with several outputs (a tuple, list or dict) has each compared on
    its own scale, so a large output cannot hide a wrong small one. Each
    claimed array must have the replay's dtype (a float64 claim for a float32
    model is a different answer). Integer and boolean outputs must match
    exactly; float outputs within :data:`OUTPUT_RTOL` of their largest finite
    entry; a non-finite entry of the replay (a NaN the model itself produces)
    must be the same non-finite value in the claim.
    """
    if isinstance(ours, (list, tuple, dict)):
        mine = output_leaves(ours)
        try:
            theirs = output_leaves(claimed) if issubclass(type(claimed), (list, tuple, dict)) else [claimed]
        except Exception as e:  # the claim's own structure (hostile keys, too deep): provider evidence
            return f"the claimed model output's structure cannot be read: {type(e).__name__}"
        if len(theirs) != len(mine):
            return f"the claimed model output has {len(theirs)} arrays, the replay gives {len(mine)}"
        for i, (c, o) in enumerate(zip(theirs, mine)):
            problem = array_problem(c, o)
            if problem is not None:
                return f"output {i}: {problem}"
        return None
    return array_problem(claimed, ours)


def _host(x: Any) -> tuple[np.ndarray, str] | str:
    """``(numpy values, dtype name)`` of a claimed or replayed array, or why it is not one."""
    try:
        b = backend_of(x)
    except TypeError as e:
        return f"not an array: {e}"
    # exact types, never names (a subclass can be called Tensor) nor isinstance (it asks the object)
    if b == "torch":
        import torch

        if type(x) is not torch.Tensor:
            return f"a {type(x).__name__} (a tensor subclass can compute differently; send a plain tensor)"
        if not torch_values_readable(x):
            return f"a {x.layout} tensor on {x.device} (send a dense tensor with data)"
    elif exact_array_type(x) is None:
        return f"a {type(x).__name__} (a subclass of an array type; send a plain {b} array)"
    x = plain(x)
    name = dtype_name(x)
    a = to_numpy(x)
    return a, name


def torch_values_readable(t: Any) -> bool:
    """Whether a torch tensor's values can be read as a dense array (not sparse, quantised, meta or nested)."""
    import torch

    return (t.layout == torch.strided and t.device.type != "meta" and not t.is_quantized
            and not getattr(t, "is_nested", False))


def _declared(x: Any) -> tuple[tuple[int, ...], str] | None:
    """Shape and dtype name of an exact array, read without converting (or copying) any value."""
    if exact_array_type(x) is None:
        return None
    return tuple(int(d) for d in x.shape), dtype_name(x)


def array_problem(claimed: Any, ours: Any) -> str | None:
    """Why one claimed output array does not match the replay's, or None.

    Shape and dtype are compared before any value is read: converting a claim (bfloat16 widened,
    moved off its device) costs what its shape declares, which must first be the replay's.
    """
    theirs, mine = _declared(claimed), _declared(ours)
    if theirs is not None and mine is not None:
        if theirs[1] != mine[1]:
            return f"claimed model output has dtype {theirs[1]}, the model's output is {mine[1]}"
        if theirs[0] != mine[0]:
            return f"claimed model output has shape {theirs[0]}, the replay gives {mine[0]}"
    got = _host(claimed)
    if isinstance(got, str):
        return f"claimed model output is {got}"
    c, cname = got
    mine = _host(ours)
    if isinstance(mine, str):
        return f"the replay's output is {mine}"
    o, oname = mine
    if cname != oname:
        return f"claimed model output has dtype {cname}, the model's output is {oname}"
    if c.shape != o.shape:
        return f"claimed model output has shape {c.shape}, the replay gives {o.shape}"
    if not o.size:
        return None
    if o.dtype.kind in "biu":  # no rounding to forgive: a relative tolerance would pass an index off by one
        same = np.equal(c, o)
        if not np.all(same):
            return (f"claimed model output differs from the replay's {oname} output in "
                    f"{int(np.size(same) - np.count_nonzero(same))} entries")
        return None
    if o.dtype.kind not in "fc":
        return f"the model's output has dtype {oname}, which is not compared (use float, integer or bool outputs)"
    finite = np.isfinite(o)
    if not np.all(finite):  # the model's own NaN/Inf: the claim must have the same value at the same place
        c_nf, o_nf = c[~finite], o[~finite]
        if not np.array_equal(np.isnan(c_nf), np.isnan(o_nf)) or np.any(c_nf[~np.isnan(o_nf)] != o_nf[~np.isnan(o_nf)]):
            return "claimed model output differs from the replay at the replay's non-finite entries"
        c, o = c[finite], o[finite]
        if not o.size:
            return None
    if not np.all(np.isfinite(c)):
        return "claimed model output contains NaN or Inf where the replay's is finite"
    d = np.subtract(c, o, dtype=np.result_type(c.dtype, o.dtype, np.float32))
    gap = float(np.max(np.abs(d, out=d)))
    scale = float(np.max(np.abs(o)))
    if gap > OUTPUT_RTOL.get(oname, 1e-5) * scale + 1e-30:
        return f"claimed model output differs from the replay by {gap:.3g} (scale {scale:.3g})"
    return None


def summarise(layers: list[dict], problem: str | None, t0: float, inference_s: float | None,
              flops: float, extra: dict | None = None) -> Verdict:
    """The model verdict from the per-layer results and the final-output problem (if any)."""
    verify_s = time.perf_counter() - t0
    bad = [x for x in layers if not x["accepted"]]
    details: dict[str, Any] = {"layers": layers, "first_bad_layer": bad[0]["name"] if bad else None,
                               "layers_checked": len(layers), "verify_s": verify_s, **(extra or {})}
    if inference_s:
        details["inference_s"] = inference_s
        details["verify_over_inference"] = verify_s / inference_s
    cost = Cost(flops=flops, seconds=verify_s)
    if bad:
        return Verdict.reject(f"layer {bad[0]['name']}: {bad[0]['reason']} ({len(bad)} of {len(layers)} "
                              "layers fail)", scheme=SCHEME, cost=cost, details=details)
    if problem is not None:
        return Verdict.reject(problem, scheme=SCHEME, cost=cost, details=details)
    if not layers:  # no claim was used: the replay re-executed everything, and the output matched it
        return Verdict.accept("no linear layer ran in this evaluation: the verifier recomputed all of it",
                              scheme=SCHEME, cost=cost, details=details)
    return Verdict.accept(f"all {len(layers)} linear layer calls verified", scheme=SCHEME, cost=cost,
                          details=details)


def rng_of(seed: Any) -> np.random.Generator:
    """The generator for ``seed`` (an int or a Generator: the caller's choice, so a bad one raises).

    Raises:
        TypeError: ``seed`` is neither.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be an int or a numpy Generator drawn after the claim, got {type(seed).__name__}")


def layer_verifier(verifier: Any) -> Any:
    """The per-layer Freivalds: ``verifier``, or ``Freivalds(rounds=2)`` for None.

    Raises:
        TypeError: ``verifier`` is something else.
    """
    from vcompute.verify.freivalds import Freivalds

    if verifier is not None and not isinstance(verifier, Freivalds):
        raise TypeError(f"verifier must be a Freivalds instance, got {type(verifier).__name__}")
    return verifier or Freivalds(rounds=2)


def one_of(name: str, value: Any, options: tuple) -> Any:
    """``value`` if it is one of ``options``.

    Raises:
        ValueError: naming the argument and the options.
    """
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def record(results: list, label: str, v: Verdict, flops: list) -> None:
    """Append one layer's verdict to ``results`` in the form the model verdict reports."""
    flops[0] += v.cost.flops
    results.append({"name": label, "accepted": v.accepted, "reason": v.reason,
                    "max_error_ratio": v.details.get("max_error_ratio"), "seconds": v.cost.seconds})


def layer_reject(reason: str) -> Verdict:
    """A rejected layer verdict (provider evidence for one layer is missing or malformed)."""
    return Verdict.reject(reason, scheme=SCHEME)
