"""The TOPLOC peer adapter: proofs built and verified by the toploc package on our generations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
try:
    import toploc  # noqa: F401
except Exception:  # pragma: no cover - depends on `make peers`
    pytest.skip("toploc is not importable: run `make peers` (builds toploc 0.1.6 from source against our torch)",
                allow_module_level=True)

from vcompute.verify.inference.toploc_peer import ToplocPeer  # noqa: E402
from vcompute.workloads.lm import LMConfig, TransformerLM, cast, generate  # noqa: E402

CFG = LMConfig(vocab=300, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=128)
PROMPT = [256, 72, 101, 108, 108, 111]


@pytest.fixture(scope="module")
def bf16():
    return cast(TransformerLM(CFG, seed=0), "bfloat16")


@pytest.fixture(scope="module")
def gen(bf16):
    return generate(bf16, PROMPT, max_new_tokens=64, temperature=0.8, top_p=0.95, seed=7)


def test_honest_bf16_generation_is_accepted_at_258_bytes_per_32_tokens(bf16, gen):
    peer = ToplocPeer()
    proof = peer.build(gen.hidden, "bfloat16")
    assert len(proof) == 2 * 258
    v = peer.check(bf16, PROMPT, gen.tokens, proof)
    assert v.accepted, v.reason
    assert v.details["proof_bytes_per_32"] == 258 and not v.details["bf16_cast"]


def test_another_model_or_fewer_layers_is_caught(bf16, gen):
    from vcompute.workloads.lm import with_layers

    peer = ToplocPeer()
    for cheat in (cast(TransformerLM(CFG, seed=1), "bfloat16"), with_layers(bf16, 1)):
        g = generate(cheat, PROMPT, max_new_tokens=64, temperature=0.8, top_p=0.95, seed=7)
        v = peer.check(bf16, PROMPT, g.tokens, peer.build(g.hidden, "bfloat16"))
        assert not v.accepted and "thresholds" in v.reason


def test_toploc_alone_does_not_check_the_sampler(bf16, gen):
    # tokens from another seed with the true model's commitments: TOPLOC has no token check (ours does)
    g = generate(bf16, PROMPT, max_new_tokens=64, temperature=0.8, top_p=0.95, seed=8)
    assert not np.array_equal(g.tokens, gen.tokens)
    peer = ToplocPeer()
    assert peer.check(bf16, PROMPT, g.tokens, peer.build(g.hidden, "bfloat16")).accepted


def test_fp32_job_is_checked_only_after_a_bf16_cast(gen):
    m = TransformerLM(CFG, seed=0)
    g = generate(m, PROMPT, max_new_tokens=32)
    peer = ToplocPeer()
    v = peer.check(m, PROMPT, g.tokens, peer.build(g.hidden, "float32"))
    assert v.accepted and v.details["bf16_cast"]


@pytest.mark.parametrize("mutate,why", [
    (lambda p: p[:-1], "bytes"),
    (lambda p: b"", "bytes"),
    (lambda p: b"\x00\x00" + p[2:], "modulus 0"),
    (lambda p: list(p), "not bytes"),
    (lambda p: p + p[:258], "bytes"),
])
def test_malformed_proofs_are_rejected_not_crashed(bf16, gen, mutate, why):
    peer = ToplocPeer()
    v = peer.check(bf16, PROMPT, gen.tokens, mutate(peer.build(gen.hidden, "bfloat16")))
    assert not v.accepted and why in v.reason, v.reason


def test_random_bytes_are_rejected(bf16, gen):
    rng = np.random.default_rng(0)
    peer = ToplocPeer()
    raw = bytearray(rng.bytes(2 * 258))
    raw[0] |= 0x80  # a non-zero modulus, so the package itself evaluates the garbage
    raw[258] |= 0x80
    assert not peer.check(bf16, PROMPT, gen.tokens, bytes(raw)).accepted
    assert not peer.check(bf16, PROMPT, gen.tokens.astype(float), peer.build(gen.hidden, "bfloat16")).accepted


def test_the_package_itself_dies_on_a_zero_modulus():
    # why the adapter validates the layout first: toploc 0.1.6 takes x % 0 in C++ (SIGFPE kills the verifier)
    code = ("import torch, toploc; a = torch.randn(32, 8).to(torch.bfloat16); "
            "toploc.verify_proofs_bytes(a, [bytes(258)], 32, 128, skip_prefill=True)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode != 0


def test_misuse_raises(bf16, gen):
    with pytest.raises(ValueError, match="topk"):
        ToplocPeer(topk=0)
    with pytest.raises(TypeError, match="model"):
        ToplocPeer().check(object(), PROMPT, gen.tokens, b"")
