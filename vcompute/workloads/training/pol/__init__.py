"""The prover side of proof-of-learning: transcripts, recording, signing, and cheating provers.

What a provider runs while it trains (DESIGN.md: provers live beside their
workloads): :class:`~vcompute.workloads.training.pol.prover.TranscriptRecorder`
and :func:`~vcompute.workloads.training.pol.prover.prove` record checkpoints
into a :class:`~vcompute.workloads.training.pol.transcript.Transcript`;
:mod:`~vcompute.workloads.training.pol.wrappers` wraps a user's torch or JAX
loop; :mod:`~vcompute.workloads.training.pol.adversaries` holds the cheating
provers the verifier (:mod:`vcompute.verify.pol`) is tested against.
"""
