"""Ed25519 signing: both backends agree byte for byte; verify never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcompute.core import ed25519 as ed
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


def _backends() -> list[str]:
    out = ["python"]
    for name, module in (("cryptography", "cryptography"), ("pycryptodome", "Crypto")):
        try:
            __import__(module)
            out.append(name)
        except ImportError:
            pass
    return out


_TORSION = [ed.encode(t) for t in ed.torsion_points()]


def _mutate(kind: str, pub: bytes, msg: bytes, sig: bytes, k: int) -> tuple[bytes, bytes, bytes]:
    """One way a hostile party alters a valid (key, message, signature); ``k`` picks where."""
    s = int.from_bytes(sig[32:], "little")
    if kind == "flip_sig":
        b = bytearray(sig)
        b[k % 64] ^= 1 << (k % 8)
        return pub, msg, bytes(b)
    if kind == "flip_pub":
        b = bytearray(pub)
        b[k % 32] ^= 1 << (k % 8)
        return bytes(b), msg, sig
    if kind == "flip_msg":
        return pub, msg + bytes([k % 256]), sig
    if kind == "s_plus_l":
        return pub, msg, sig[:32] + (s + ed.L).to_bytes(32, "little")
    if kind == "r_plus_torsion":
        r = ed.decode(sig[:32])
        return pub, msg, ed.encode(ed.add(r, ed.torsion_points()[1 + k % 7])) + sig[32:]
    if kind == "pub_plus_torsion":
        return ed.encode(ed.add(ed.decode(pub), ed.torsion_points()[1 + k % 7])), msg, sig
    if kind == "small_order_pub":
        return _TORSION[k % 8], msg, sig
    if kind == "sign_bit":
        return pub, msg, sig[:31] + bytes([sig[31] ^ 0x80]) + sig[32:]
    return pub, msg, sig


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), msg=st.binary(max_size=64), k=st.integers(0, 10**6),
       kind=st.sampled_from(["none", "flip_sig", "flip_pub", "flip_msg", "s_plus_l", "r_plus_torsion",
                             "pub_plus_torsion", "small_order_pub", "sign_bit"]))
def test_backends_agree_on_random_valid_and_mutated_signatures(seed, msg, k, kind):
    key = SigningKey(seed)
    pub, m, sig = _mutate(kind, key.public_bytes, msg, key.sign(msg), k)
    answers = {b: signing._verify_with(b, pub, m, sig) for b in _backends()}
    assert len(set(answers.values())) == 1, answers
    assert answers["python"] == ed.verify_strict(pub, m, sig)
    assert answers["python"] is (kind == "none")


def test_small_order_forgery_accepted_before_refused_after():
    """A signature by nobody, on any message, for the identity key: the libraries accept it, verify does not."""
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    ident = ed.encode(ed.IDENTITY)
    for msg in (b"transfer 10**9 to mallory", b"I never signed this"):
        forged = ed.encode(ed.mul(42, ed.B)) + (42).to_bytes(32, "little")  # [42] B = R + [h] identity
        Ed25519PublicKey.from_public_bytes(ident).verify(forged, msg)  # before: accepted (no exception)
        assert all(signing._verify_with(b, ident, msg, forged) is False for b in _backends())
        assert verify(ident, msg, forged) is False


def test_hostile_bytes_subclasses_are_refused():
    class Liar(bytes):
        def __bytes__(self):
            return b"something else"

    k = key_from_name("erin")
    sig = k.sign(b"m")
    assert verify(k.public_bytes, b"m", sig)
    assert verify(Liar(k.public_bytes), b"m", sig) is False
    assert verify(k.public_bytes, Liar(b"m"), sig) is False
    assert verify(k.public_bytes, b"m", Liar(sig)) is False
    assert verify(bytearray(k.public_bytes), memoryview(b"m"), bytearray(sig))


def test_derived_keys_skip_the_subgroup_check_only_for_what_the_library_computed():
    """Keys SigningKey derived are trusted as prime order; what an object claims afterwards is not."""
    keys = [key_from_name(f"derived{i}", salt="t") for i in range(4)]
    for k in keys:
        assert k.public_bytes in signing._DERIVED
        assert ed.has_prime_order.__wrapped__(k.public_bytes)  # the reference agrees, uncached
        assert signing.public_key_problem(k.public_bytes) is None
    ident = ed.encode(ed.IDENTITY)
    mixed = ed.encode(ed.add(ed.mul(7, ed.B), ed.torsion_points()[1]))

    class Lying(SigningKey):
        """Answers reads of ``public_bytes`` and ``_key`` with what it likes, whatever was stored."""

        @property
        def public_bytes(self):
            return ident

        @public_bytes.setter
        def public_bytes(self, _v):
            pass

        @property
        def _key(self):
            raise AssertionError("SigningKey.__init__ must not read _key back")

        @_key.setter
        def _key(self, _v):
            pass

    liar = Lying(b"\x05" * 32)
    assert liar.public_bytes == ident
    k = key_from_name("victim", salt="t")
    k.public_bytes = mixed  # a plain key object told to claim another key
    for bad in (ident, mixed):
        assert bad not in signing._DERIVED
        assert signing.public_key_problem(bad) is not None
    forged = ed.encode(ed.mul(42, ed.B)) + (42).to_bytes(32, "little")
    assert verify(ident, b"anything", forged) is False


def test_derived_key_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(signing, "_DERIVED", set())
    monkeypatch.setattr(signing, "_DERIVED_CAP", 2)
    keys = [SigningKey(bytes([i]) * 32) for i in range(1, 5)]
    assert len(signing._DERIVED) == 2
    assert all(signing.public_key_problem(k.public_bytes) is None for k in keys)  # the rest checked in full


def test_a_seed_whose_bytes_differ_from_its_length_is_refused_by_signing_key():
    """The length checked is that of the bytes the key is made from, not what ``__len__`` says."""

    class Short(bytes):
        def __len__(self):
            return 32

        def __bytes__(self):
            return b"\x01" * 5

    with pytest.raises(ValueError, match="exactly 32 bytes"):
        SigningKey(Short(b"\x01" * 32))
