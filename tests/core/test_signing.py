"""Ed25519 signing: both backends agree byte for byte; verify never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcompute.core import signing
from vcompute.core.signing import SigningKey, key_from_name, verify

# RFC 8032, section 7.1, test 2
RFC_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_PUB = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC_SIG = bytes.fromhex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")


def test_rfc8032_vector():
    k = SigningKey(RFC_SEED)
    assert k.public_bytes == RFC_PUB
    assert k.sign(b"\x72") == RFC_SIG
    assert verify(RFC_PUB, b"\x72", RFC_SIG)


def test_backends_agree(monkeypatch):
    pytest.importorskip("Crypto")
    pytest.importorskip("cryptography")
    k = key_from_name("alice")
    fast = k.sign(b"msg")
    monkeypatch.setattr(signing, "_BACKEND", "pycryptodome")
    slow_key = SigningKey(k._seed)
    assert slow_key.public_bytes == k.public_bytes
    assert slow_key.sign(b"msg") == fast
    assert verify(k.public_bytes, b"msg", fast)


@settings(max_examples=50)
@given(pub=st.binary(max_size=40), msg=st.binary(max_size=40), sig=st.binary(max_size=70))
def test_verify_never_raises(pub, msg, sig):
    assert verify(pub, msg, sig) in (True, False)
    k = key_from_name("x")
    assert verify(k.public_bytes, msg, sig[:64].ljust(64, b"\0")) is False


def test_tampering_and_wrong_types():
    k = key_from_name("bob")
    s = k.sign(b"pay 5")
    assert not verify(k.public_bytes, b"pay 6", s)
    assert not verify(key_from_name("eve").public_bytes, b"pay 5", s)
    assert not verify(k.public_bytes, b"pay 5", bytes([s[0] ^ 1]) + s[1:])
    assert verify(k.public_bytes, "pay 5", s) is False
    assert verify(None, b"pay 5", s) is False
    with pytest.raises(ValueError):
        SigningKey(b"short")


def test_derive_secret_is_domain_separated_and_deterministic():
    k = key_from_name("carol")
    assert k.derive_secret("evm") == key_from_name("carol").derive_secret("evm")
    assert k.derive_secret("evm") != k.derive_secret("bls")
    assert k.derive_secret("evm") != key_from_name("dave").derive_secret("evm")
