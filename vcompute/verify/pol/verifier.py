"""Proof-of-learning verifier: commitments, initialisation, top-Q + random segment replay.

Paper: H. Jia et al., "Proof-of-Learning: Definitions and Practice", IEEE
S&P 2021 (arxiv.org/abs/2103.05633); reference code cleverhans-lab/Proof-of-Learning.
Attacks on it: R. Zhang et al., "Adversarial Examples for Proof-of-Learning",
IEEE S&P 2022; C. Fang et al., "Proof-of-Learning is Currently More Broken
Than You Think", IEEE EuroS&P 2023.

Unlike the reference, this verifier binds hyperparameters, seeds, dataset
and batch order to the job (the commitments are checked, not trusted),
checks the initialisation exactly from the committed seed, always replays
the last segment and checks the declared update table against the
checkpoints it holds (so the final model is bound), adds segments drawn
from randomness fixed after the commitment to the top-Q selection,
measures the replay error relative to the verifier's own replayed update
with a calibrated ``delta``, and downloads only the segments it challenges.
:meth:`PoLVerifier.reference` builds the reference-style verifier for
comparison. Claims and arguments: ``proofs/pol.md``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.merkle import verify_proof
from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import Misuse, Scheme, VerifyContext, caller_code, verifier_fault
from vcompute.verify.pol.arguments import check_beacon, check_training_job
from vcompute.verify.pol.arguments import count as _count
from vcompute.verify.pol.arguments import real as _real
from vcompute.verify.pol.replay import absolute_param_error, make_piece, reexecute_segment, relative_error
from vcompute.verify.pol.checks import (
    Reject,
    check_chain,
    check_delivered_model,
    check_leaf,
    check_plain_json,
    committed_seeds,
    first_item,
    decode_checkpoint,
    exact_bytes,
    exact_fields,
    exact_proof,
    inflate,
    ks_init,
    listed,
    param_vector,
    segment_count_reason,
    shipped_array,
    within_job,
)
from vcompute.verify.pol.selection import beacon_rng, select_segments
from vcompute.workloads.training.pol.transcript import HEADER_VERSION, METRICS, checkpoint_digest, update_metrics

__all__ = ["PoLVerifier", "DEFAULT_DELTA"]

#: Default relative tolerance, from ``experiments/pol-calibration.toml`` (400 segments per
#: condition, torch and JAX provers, MLP and CNN on digits; see proofs/pol.md): the geometric
#: mean of the largest honest replay error (1.73e-6, a CNN replayed in the other framework;
#: 1 vs 2 torch threads: at most 4.1e-7; same machine: bit-exact) and the smallest error of a
#: segment trained under fp16 autocast and claimed as fp32 (2.78e-4; bf16: 2.4e-3), so
#: 12.7x of margin on each side. Other hardware (GPU, TF32) must be calibrated on that pair.
DEFAULT_DELTA = 2.2e-5


class PoLVerifier(Scheme):
    """Verifies a committed training transcript by replaying a few segments.

    Args:
        top_q: segments picked per metric by declared update size (Jia et al.'s top-Q).
        random_segments: further segments drawn uniformly from the rest with ``ctx.rng``.
        metrics: which update-size metrics top-Q ranks by (``l1``, ``l2``, ``linf``, ``cos``).
        delta: replay tolerance (relative, or absolute l2 for ``delta_mode='absolute'``).
        delta_mode: ``relative`` (error / replayed update) or ``absolute`` (reference).
        bind_hparams: check committed hyperparameters equal the job's (else trust the header's, but for the
            amount of work: steps and checkpoint interval, hence the segment count, are always the job's).
        bind_seeds: require seeds derived from job and provider, and an exactly seeded init.
        bind_dataset: require the job's dataset (else accept the prover's data if its hash matches).
        bind_batch_order: recompute the batch-order root from the committed data seed.
        download_all: reference behaviour: download every checkpoint and rank updates
            per epoch from them instead of from the committed declarations.
        init_check: ``exact`` (seeded init, no download) or ``ks`` (per-layer KS test).
        public_keys: provider name -> Ed25519 public key; default: the simulated
            agent key :func:`~vcompute.core.signing.key_from_name`.
        replay_framework: framework to replay on (default: the job's).
        replay_cache: optional dict memoising replays (experiments re-verify one transcript many times).
        ks_alpha: family-wise level of the KS initialisation test.
        hash_first: open a segment with only the digest of its end checkpoint and
            download the end checkpoint only if the replay is not bit-exact.
        transport: ``"lzma"`` asks the prover for lzma-compressed checkpoints (lossless;
            decompression is capped at the model's size), ``None`` (default) for raw
            bytes: float32 checkpoints shrink only ~1.08x, not worth the prover's CPU.
        max_segments: cap on the segments opened per verification (final and top-Q first;
            the random draws shrink to fit), which caps re-execution and bytes.
        final_segments: the last segments always replayed (the final-model rule): a swapped
            final checkpoint is caught whatever the declared table says.
        chain_check: check, between every two consecutive checkpoints the verifier holds,
            that their distance is at most the declared updates between them (catches a
            swapped model before the last segment; see proofs/pol.md, C6).
        anchors: further checkpoints downloaded at random (not replayed) as chain-check anchors:
            shorter gaps between held checkpoints catch smaller swaps, for bytes only.
        beacon: public randomness revealed after the commitment (>= 16 bytes); if given,
            the challenged segments come from it mixed with the transcript root instead of
            ``ctx.rng`` (reproducible by anyone who knows the beacon).

    Raises:
        TypeError: for arguments of the wrong type (named in the message).
        ValueError: for out-of-range or inconsistent arguments (named in the message).

    Example:
        >>> from vcompute.workloads.training import make_training_job
        >>> from vcompute.verify.pol import prove, pol_context
        >>> job = make_training_job(dataset="synthetic", steps=8, checkpoint_every=2)
        >>> claim, tr = prove(job, "alice")
        >>> PoLVerifier(random_segments=1).verify(job, [claim], pol_context([claim], {"alice": tr}, seed=0)).accepted
        True
    """

    name = "pol"
    binds_commitment = False  # the commitment is the transcript's Merkle root, checked by _verify

    def __init__(self, *, top_q: int = 1, random_segments: int = 6, metrics: Sequence[str] = METRICS,
                 delta: float = DEFAULT_DELTA, delta_mode: str = "relative", bind_hparams: bool = True,
                 bind_seeds: bool = True, bind_dataset: bool = True, bind_batch_order: bool = True,
                 download_all: bool = False, init_check: str = "exact",
                 public_keys: Mapping[str, bytes] | None = None, replay_framework: str | None = None,
                 replay_cache: dict | None = None, ks_alpha: float = 0.01, hash_first: bool = True,
                 transport: str | None = None, max_segments: int | None = None, final_segments: int = 1,
                 chain_check: bool = True, anchors: int = 0, beacon: bytes | None = None) -> None:
        top_q, random_segments = _count("top_q", top_q), _count("random_segments", random_segments)
        final_segments = _count("final_segments", final_segments)
        self.anchors = _count("anchors", anchors)
        if top_q == 0 and random_segments == 0:
            raise ValueError("choose top_q > 0 or random_segments > 0: a verifier must replay something")
        if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
            raise TypeError(f"metrics must be a sequence of metric names from {METRICS}, got {metrics!r}")
        bad = set(metrics) - set(METRICS)
        if bad:
            raise ValueError(f"unknown metrics {sorted(bad)}; known: {', '.join(METRICS)}")
        if delta_mode not in ("relative", "absolute"):
            raise ValueError("delta_mode must be 'relative' or 'absolute'")
        delta = _real("delta", delta)
        if not (np.isfinite(delta) and delta >= 0):
            raise ValueError(f"delta must be finite and >= 0, got {delta!r}")
        if init_check not in ("exact", "ks"):
            raise ValueError("init_check must be 'exact' or 'ks'")
        if init_check == "exact" and not bind_seeds:
            raise ValueError("init_check='exact' needs bind_seeds=True; use init_check='ks' otherwise")
        beacon = None if beacon is None else check_beacon(beacon)
        self.top_q, self.random_segments, self.metrics = top_q, random_segments, tuple(metrics)
        self.delta, self.delta_mode = delta, delta_mode
        self.bind_hparams, self.bind_seeds, self.bind_dataset = bind_hparams, bind_seeds, bind_dataset
        self.bind_batch_order, self.download_all, self.init_check = bind_batch_order, download_all, init_check
        self.public_keys = dict(public_keys) if public_keys is not None else None
        self.replay_framework, self.replay_cache, self.ks_alpha = replay_framework, replay_cache, ks_alpha
        self.hash_first = bool(hash_first)
        self.final_segments, self.chain_check, self.beacon = final_segments, bool(chain_check), beacon
        if max_segments is not None:
            max_segments = _count("max_segments", max_segments)
            need = len(self.metrics) * self.top_q + self.final_segments + 1
            if max_segments < need:
                raise ValueError(f"max_segments must leave room for at least one random segment after the final "
                                 f"and top-Q segments (>= {need}), got {max_segments}")
        self.max_segments = max_segments
        if transport not in (None, "lzma"):
            raise ValueError("transport must be None or 'lzma'")
        self.transport = transport

    @classmethod
    def reference(cls, *, delta: float, top_q: int = 2, **kw: Any) -> PoLVerifier:
        """The reference-style verifier of Jia et al. for comparison.

        Hyperparameters, seeds, dataset and batch order are taken from the
        prover's transcript (but for the step count and checkpoint interval,
        which fix the segments and are the job's in every mode); the initialisation is KS-tested; every checkpoint
        is downloaded; the top-``top_q`` updates per epoch and metric are
        replayed and accepted within an absolute l2 ``delta``; no random segments.
        """
        base = dict(top_q=top_q, random_segments=0, delta=delta, delta_mode="absolute", bind_hparams=False,
                    bind_seeds=False, bind_dataset=False, bind_batch_order=False, download_all=True,
                    init_check="ks", final_segments=0, chain_check=False)
        base.update(kw)
        return cls(**base)

    def __repr__(self) -> str:
        return (f"PoLVerifier(top_q={self.top_q}, random_segments={self.random_segments}, delta={self.delta:g}, "
                f"delta_mode={self.delta_mode!r}, final_segments={self.final_segments}, "
                f"chain_check={self.chain_check}, download_all={self.download_all})")

    # -- Verifier protocol (one claim: one transcript) ----------------------
    def evidence(self, job: Job) -> EvidenceSpec:
        """A PoL transcript with checkpoints every ``checkpoint_every`` steps."""
        return EvidenceSpec("pol-transcript", {"checkpoint_every": job.spec.get("checkpoint_every")})

    def check_job(self, job: Job, ctx: VerifyContext) -> None:
        """Refuse a job that is not a valid training job (the caller's mistake: no evidence is looked at).

        Raises:
            ValueError: if ``job`` is not a valid training job, or ``ctx`` has no challenge channel
                (every verification opens segments: without one an honest transcript would be rejected).
        """
        check_training_job(job)
        if not ctx.can_challenge:
            raise ValueError("PoLVerifier opens transcript segments: pass a VerifyContext with challenge=... "
                             "(vcompute.verify.pol.pol_context builds one)")

    def _check(self, job: Job, claims: tuple[Claim, ...], ctx: VerifyContext) -> Verdict:
        """Check commitments, initialisation and the challenged segments of the one claim.

        A failing check is rejected with its reason (the segment, if a
        segment fails, is in the reason and in ``details["failed_segment"]``);
        ``details`` always holds the segments opened and their errors.
        """
        details: dict[str, Any] = {"opened": [], "errors": []}
        try:
            verdict = self._verify(job, claims, ctx, details)
        except Reject as e:
            verdict = Verdict.reject(str(e))
            if e.segment is not None:
                details["failed_segment"] = e.segment
        return dataclasses.replace(verdict, details={**details, **verdict.details})

    # -- internals --------------------------------------------------------
    def _verify(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext, details: dict) -> Verdict:
        from vcompute.workloads.training.data import batch_order_root
        from vcompute.workloads.training.spec import (
            Dataset,
            TrainSpec,
            dataset_of,
            derive_seeds,
            encode_state,
            init_state,
            param_shapes,
            spec_of,
        )

        claim = claims[0]  # job_id and provider bound by the Scheme base: exact str
        job_spec = spec_of(job)
        if type(claim.commitment) is not str:  # a str subclass could lie in == and !=
            raise Reject("the claim's commitment is not a plain string")
        # read as exact builtins before anything else: no provider code runs in a lookup, len() or == below
        ev, meta = exact_fields(claim.evidence, "the evidence"), exact_fields(claim.meta, "the claim's meta")
        for key in ("root", "n_leaves", "header", "header_proof", "init_proof", "final_proof"):
            if key not in ev:
                raise Reject(f"evidence lacks {key!r}: not a PoL transcript commitment")
        root, n_leaves = ev["root"], ev["n_leaves"]
        if type(root) not in (bytes, bytearray) or len(root) != 32 or claim.commitment != bytes(root).hex():
            raise Reject("the claim's commitment is not the transcript's Merkle root")
        root = bytes(root)
        header_bytes = exact_bytes(ev["header"], "the transcript header")
        proofs = {k: exact_proof(ev[k], f"evidence {k!r}") for k in ("header_proof", "init_proof", "final_proof")}
        ctx.add_cost(Cost(evidence_bytes=len(header_bytes) + 32 * (sum(len(p) for p in proofs.values()) + 1)))
        if type(n_leaves) is not int or type(meta.get("n_leaves")) is not int or n_leaves != meta["n_leaves"]:
            raise Reject("leaf count in the evidence disagrees with the signed claim")
        check_plain_json(meta, "the claim's meta")  # signing_payload serialises it
        self._check_signature(claim)
        if not verify_proof(root, header_bytes, 0, proofs["header_proof"], n_leaves=n_leaves):
            raise Reject("bad Merkle proof for the transcript header")
        header = json.loads(header_bytes)
        if not isinstance(header, dict) or header.get("version") != HEADER_VERSION:
            raise Reject(f"unknown transcript header version {header.get('version')!r}")
        if header.get("job_id") != job.id or header.get("provider") != claim.provider:
            raise Reject("the transcript header is bound to another job or provider")
        # Hyperparameters: committed and checked, or (reference) taken on faith.
        if self.bind_hparams:
            if header.get("hparams") != job_spec.to_dict():
                diff = sorted(k for k in job_spec.to_dict() if header.get("hparams", {}).get(k) != job.spec[k])
                raise Reject(f"committed hyperparameters differ from the job's: {diff}")
            spec = job_spec
        else:
            if type(header.get("hparams")) is not dict:
                raise Reject("the transcript header has no hyperparameters")
            spec = TrainSpec.from_dict(header["hparams"])
            within_job(spec, job_spec)
        # The segment count is the job's (steps / checkpoint interval of its spec), in every mode: never the
        # transcript's, which a lazy provider would shorten and a hostile one lengthen to the header's size.
        k, T, C = job_spec.checkpoint_every, job_spec.steps, job_spec.n_segments
        if (header.get("steps"), header.get("checkpoint_every")) != (T, k):
            raise Reject(segment_count_reason(header.get("steps"), header.get("checkpoint_every"), job_spec))
        if header.get("n_checkpoints") != C + 1 or n_leaves != C + 2:
            raise Reject(f"transcript has {header.get('n_checkpoints')} checkpoints; "
                          f"{T} steps every {k} need {C + 1}")
        final = meta.get("final_checkpoint")
        if type(final) is not str or not verify_proof(root, bytes.fromhex(final), n_leaves - 1,
                                                      proofs["final_proof"], n_leaves=n_leaves):
            raise Reject("bad Merkle proof for the final model")
        layout = [[n, list(s)] for n, s in param_shapes(spec).items()]
        layout = layout + [["momentum/" + n, s] for n, s in layout]
        check_delivered_model(claim.output, bytes.fromhex(final), T, layout)
        seeds = committed_seeds(header.get("seeds"))
        if self.bind_seeds and seeds != derive_seeds(job.id, claim.provider).to_dict():
            raise Reject("committed seeds are not the ones derived from this job and provider")
        # Dataset: the job's own (bound), or (reference) whatever the prover ships if its hash matches.
        if self.bind_dataset:
            data = dataset_of(job)
            if header.get("dataset_hash") != data.hash:
                raise Reject("the committed dataset hash is not the job's dataset")
        else:
            resp = self._open(ctx, claim, {"dataset": True})
            x, y = shipped_array(resp, "x", np.float32), shipped_array(resp, "y", np.int64)
            if content_hash({"x": x, "y": y}) != header.get("dataset_hash"):
                raise Reject("the shipped dataset does not match its committed hash")
            data = Dataset(x, y, "prover")
        if self.bind_batch_order:
            want = batch_order_root(T, n=len(data), batch_size=spec.batch_size, data_seed=seeds["data"])
            if header.get("batch_order_root") != want:
                raise Reject("the committed batch order is not the one the committed data seed gives")
        if header.get("layout") != layout:
            raise Reject("the transcript's state layout does not match the job's model")
        declared = np.asarray(header.get("segment_metrics"), np.float64)
        if declared.shape != (C, len(METRICS)) or not np.all(np.isfinite(declared)) or np.any(declared < 0):
            raise Reject(f"declared segment metrics must be a finite non-negative {C}x{len(METRICS)} table")
        # Initialisation.
        all_ckpts: dict[int, bytes] = {}
        if self.download_all:
            resp = self._open(ctx, claim, {"checkpoints": list(range(C + 1))})
            limit = 4 * sum(int(np.prod(shape)) for _, shape in layout) + 4096
            cks, prs = listed(resp, "checkpoints"), listed(resp, "proofs")
            if len(cks) != len(prs):
                raise Reject("the prover shipped checkpoints and proofs of different counts")
            for i, (ck, pr) in enumerate(zip(cks, prs)):
                ck = inflate(resp, ck, limit)
                check_leaf(root, n_leaves, 1 + i, ck, pr, f"checkpoint {i}")
                all_ckpts[i] = ck
            if len(all_ckpts) != C + 1:
                raise Reject("the prover did not ship every checkpoint")
        known: dict[int, np.ndarray] = {}  # committed checkpoints the verifier holds -> parameters
        if self.init_check == "exact":
            init = init_state(spec, seeds["init"])
            digest = checkpoint_digest(encode_state(0, init))
            if not verify_proof(root, digest, 1, proofs["init_proof"], n_leaves=n_leaves):
                raise Reject("checkpoint 0 is not the initialisation the committed seed gives")
            known[0] = param_vector(init)
        else:
            ck0 = all_ckpts.get(0) or self._open_checkpoint(ctx, claim, root, n_leaves, 0, layout)
            ks_init(spec, ck0, details, self.ks_alpha)
        # Segment selection: randomness fixed only after the commitment (a beacon mixed with the
        # root, or ctx.rng); the last segments are always replayed, binding the final model.
        if self.download_all:
            states = [decode_checkpoint(all_ckpts[i], i * k, layout) for i in range(C + 1)]
            from vcompute.workloads.training.spec import flat_params

            ps = [flat_params(s) for s in states]
            table = np.array([update_metrics(ps[j], ps[j + 1]) for j in range(C)])
            per_epoch = max(1, (len(data) // spec.batch_size) // k)
        else:
            table, per_epoch = declared, None
        rng = ctx.rng if self.beacon is None else beacon_rng(self.beacon, root)
        forced = list(range(max(0, C - self.final_segments), C))
        chosen = select_segments(table, [METRICS.index(m) for m in self.metrics], top_q=self.top_q,
                                 random_segments=self.random_segments, rng=rng, group=per_epoch,
                                 max_segments=self.max_segments, forced=forced)
        details["n_segments"] = C
        details["forced"] = forced
        for j in chosen:
            if self.download_all:
                start, end = states[j], states[j + 1]
                replayed = self._replay(job, ctx, spec, start, j * k, k, seeds, data)
            else:
                start, end, replayed = self._open_segment(job, ctx, claim, root, n_leaves, spec, j, layout,
                                                          seeds, data)
                got = update_metrics(param_vector(start), param_vector(end))
                if not np.allclose(got, declared[j], rtol=1e-6, atol=1e-9):
                    raise Reject(f"segment {j}: declared update sizes {declared[j].tolist()} are false "
                                 f"(the checkpoints give {got})", segment=j)
                known[j], known[j + 1] = param_vector(start), param_vector(end)
            err = (relative_error(start, end, replayed) if self.delta_mode == "relative"
                   else absolute_param_error(end, replayed))
            details["opened"].append(int(j))
            details["errors"].append(err)
            if not err <= self.delta:
                raise Reject(f"segment {j} (steps {j * k}-{(j + 1) * k}) does not reproduce: "
                             f"{self.delta_mode} error {err:.3g} > delta {self.delta:.3g}", segment=j)
        if self.chain_check and not self.download_all:
            self._add_anchors(ctx, claim, root, n_leaves, layout, k, rng, known)
            check_chain(known, declared)
        details["max_error"] = max(details["errors"], default=0.0)
        return Verdict.accept(f"{len(chosen)} of {C} segments reproduce within delta {self.delta:.3g} "
                              f"(largest error {details['max_error']:.3g})")

    def _open_segment(self, job, ctx, claim, root, n_leaves, spec, j, layout, seeds, data):
        """Open segment ``j`` and replay it; fetch the end checkpoint only if the replay is not bit-exact."""
        from vcompute.workloads.training.spec import encode_state

        k = spec.checkpoint_every
        limit = 4 * sum(int(np.prod(shape)) for _, shape in layout) + 4096
        req = {"segment": int(j), "end": "digest"} if self.hash_first else {"segment": int(j)}
        resp = self._open(ctx, claim, req)
        start_bytes = inflate(resp, resp["start"], limit)
        check_leaf(root, n_leaves, 1 + j, start_bytes, resp["start_proof"], f"checkpoint {j}")
        start = decode_checkpoint(start_bytes, j * k, layout)
        replayed = self._replay(job, ctx, spec, start, j * k, k, seeds, data)
        if self.hash_first:
            digest = resp["end_digest"]
            if not (isinstance(digest, (bytes, bytearray))
                    and verify_proof(bytes(root), bytes(digest), 2 + j, resp["end_proof"], n_leaves=n_leaves)):
                raise Reject(f"bad Merkle proof for checkpoint {j + 1}")
            if checkpoint_digest(encode_state((j + 1) * k, replayed)) == bytes(digest):
                return start, replayed, replayed  # bit-exact: nothing more to download
            resp2 = self._open(ctx, claim, {"checkpoints": [j + 1]})
            end_bytes = inflate(resp2, first_item(resp2, "checkpoints"), limit)
            if not isinstance(end_bytes, (bytes, bytearray)) or checkpoint_digest(end_bytes) != bytes(digest):
                raise Reject(f"checkpoint {j + 1} does not match its committed digest")
        else:
            end_bytes = inflate(resp, resp["end"], limit)
            check_leaf(root, n_leaves, 2 + j, end_bytes, resp["end_proof"], f"checkpoint {j + 1}")
        return start, decode_checkpoint(end_bytes, (j + 1) * k, layout), replayed

    def _add_anchors(self, ctx, claim, root, n_leaves, layout, k, rng, known) -> None:
        """Download ``self.anchors`` random checkpoints not yet held (drawn after the commitment)."""
        pool = np.array(sorted(set(range(1, n_leaves - 2)) - set(known)), dtype=np.int64)
        n = min(self.anchors, int(pool.size))
        if not n:
            return
        idx = sorted(int(i) for i in rng.choice(pool, size=n, replace=False))
        resp = self._open(ctx, claim, {"checkpoints": idx})
        cks, proofs = resp.get("checkpoints"), resp.get("proofs")
        if not (type(cks) is list and type(proofs) is list and len(cks) == len(proofs) == n):
            raise Reject(f"the prover did not ship the {n} anchor checkpoints asked for")
        limit = 4 * sum(int(np.prod(shape)) for _, shape in layout) + 4096
        for i, ck, pr in zip(idx, cks, proofs):
            ck = inflate(resp, ck, limit)
            check_leaf(root, n_leaves, 1 + i, ck, pr, f"checkpoint {i}")
            known[i] = param_vector(decode_checkpoint(ck, i * k, layout))

    def _check_signature(self, claim: Claim) -> None:
        from vcompute.core.signing import key_from_name, verify

        if self.public_keys is not None:
            pub = self.public_keys.get(claim.provider)
            if pub is None:
                raise Reject(f"no public key known for provider {claim.provider!r}")
        else:
            pub = key_from_name(claim.provider).public_bytes
        if claim.signature is None or not verify(pub, claim.signing_payload(), claim.signature):
            raise Reject("bad or missing provider signature over the commitment")

    def _open(self, ctx: VerifyContext, claim: Claim, request: dict) -> Mapping[str, Any]:
        if self.transport == "lzma" and not request.get("dataset"):
            request = {**request, "compress": "lzma"}
        resp = exact_fields(ctx.challenge(claim, request), f"the prover's answer to {request}")
        if "error" in resp:
            why = resp["error"] if type(resp["error"]) is str else f"a {type(resp['error']).__name__}"
            raise Reject(f"the prover could not open {request}: {why[:300]}")
        return resp

    def _open_checkpoint(self, ctx, claim, root, n_leaves, i, layout) -> bytes:
        resp = self._open(ctx, claim, {"checkpoints": [i]})
        ck = inflate(resp, first_item(resp, "checkpoints"), 4 * sum(int(np.prod(s)) for _, s in layout) + 4096)
        check_leaf(root, n_leaves, 1 + i, ck, first_item(resp, "proofs"), f"checkpoint {i}")
        return ck

    def _replay(self, job, ctx, spec, start, step, k, seeds, data):
        fw = self.replay_framework or spec.framework
        key = None
        if self.replay_cache is not None:
            key = (content_hash(dict(start)), step, k, content_hash(spec.to_dict()), seeds["data"],
                   seeds["aug"], fw, data.hash)
        frac = k / spec.steps
        if key is not None and key in self.replay_cache:
            ctx.add_cost(Cost(reexecuted_fraction=frac))
            return self.replay_cache[key]
        piece = make_piece(spec, start, step, k, data_seed=seeds["data"], aug_seed=seeds["aug"], framework=fw,
                           data=None if self.bind_dataset else data)
        if ctx.can_reexecute:
            try:
                out = ctx.reexecute(job, piece, fraction=frac)
            except Exception as e:  # the caller's trusted backend failing on a validated state: never a rejection
                if verifier_fault(e):
                    raise
                raise Misuse(f"the re-execution backend failed on segment {step // k}: {type(e).__name__}: {e}") from e
        else:  # the job's training on a decoded, screened checkpoint: a failure is not the provider's
            with ctx.meter(reexecuted_fraction=frac), caller_code(f"the replay of segment {step // k}"):
                out = reexecute_segment(job, piece)
        if key is not None:
            self.replay_cache[key] = out
        return out

