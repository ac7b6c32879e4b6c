"""Ed25519 edge cases built from the curve maths: every backend gives the strict answer.

The vectors follow "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko,
SSR 2020): small-order public keys in all 14 encodings with forgeries
against them, non-canonical ``R`` and ``S``, mixed-order keys and ``R``.
Nothing is downloaded: each vector is constructed here with
:mod:`vcompute.core.ed25519`, and the raw libraries are asked too, to show
that each attack is real (the library accepts it) and that
:func:`vcompute.core.signing.verify` refuses it on every backend.
"""

from __future__ import annotations

import hashlib

import pytest

from vcompute.core import ed25519 as ed
from vcompute.core import signing
from vcompute.core.signing import SigningKey, public_key_problem

BACKENDS = ["cryptography", "pycryptodome", "python"]

# RFC 8032, section 7.1, tests 1-3: (secret, public, message, signature)
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


def _enc_int(n: int) -> bytes:
    return n.to_bytes(32, "little")


def small_order_encodings() -> list[tuple[str, bytes]]:
    """The 8 small-order points canonically, plus the 6 non-canonical encodings that decode to one."""
    out = [(f"canonical torsion {i}", ed.encode(t)) for i, t in enumerate(ed.torsion_points())]
    sign = 1 << 255
    out += [("y=1, sign bit set", _enc_int(1 | sign)), ("y=p-1, sign bit set", _enc_int(ed.P - 1 | sign)),
            ("y=p (y=0)", _enc_int(ed.P)), ("y=p (y=0), sign bit set", _enc_int(ed.P | sign)),
            ("y=p+1 (y=1)", _enc_int(ed.P + 1)), ("y=p+1 (y=1), sign bit set", _enc_int(ed.P + 1 | sign))]
    return out


def _lenient(enc: bytes):
    return ed.decode(enc, strict=False)


def forge_for_small_order_key(public: bytes, message: bytes) -> bytes:
    """A signature of ``message`` under the small-order key ``public``, made without any secret.

    ``[s] B = R + [h] A`` has the solution ``R = [s] B - [h] A``; as ``[h] A``
    is one of 8 points, try ``R = [s] B + T`` for each torsion point ``T``
    until ``h = H(R || A || M)`` makes it hold (1 in 8 per try).
    """
    a = _lenient(public)
    for s in range(1, 1000):
        sb = ed.mul(s, ed.B)
        for t in ed.torsion_points():
            r = ed.encode(ed.add(sb, t))
            if ed.encode(ed.add(t, ed.mul(ed.challenge(r, public, message), a))) == ed.encode(ed.IDENTITY):
                return r + s.to_bytes(32, "little")
    raise AssertionError("no forgery found")


def _key(seed: bytes) -> tuple[int, bytes]:
    """Secret scalar and public key of a seed (RFC 8032 clamping)."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    return a, ed.encode(ed.mul(a, ed.B))


def edge_vectors() -> list[tuple[str, bytes, bytes, bytes]]:
    """(name, public, message, signature) that a strict verifier must refuse."""
    msg = b"pay 100 to mallory"
    out = [(f"forgery, small-order key ({n})", enc, msg, forge_for_small_order_key(enc, msg))
           for n, enc in small_order_encodings()]
    ident = ed.encode(ed.IDENTITY)
    # S = L against the identity key: R = identity works for every message (pycryptodome checks S > L only)
    out.append(("S = L, identity key", ident, msg, ident + ed.L.to_bytes(32, "little")))
    # non-canonical R (identity as y = p + 1), S = 0, identity key
    out.append(("non-canonical R, identity key", ident, msg, _enc_int(ed.P + 1) + bytes(32)))
    a, pub = _key(b"\x07" * 32)
    t8 = ed.torsion_points()[1]
    r = 12345678901234567890
    # a real signature with S + L: malleated
    good = SigningKey(b"\x07" * 32).sign(msg)
    out.append(("S + L (malleated)", pub, msg, good[:32] + (int.from_bytes(good[32:], "little") + ed.L).to_bytes(32, "little")))
    # mixed-order R by the key owner: R = [r] B + T8, S = r + h a
    rb = ed.encode(ed.add(ed.mul(r, ed.B), t8))
    s = (r + ed.challenge(rb, pub, msg) * a) % ed.L
    out.append(("mixed-order R", pub, msg, rb + s.to_bytes(32, "little")))
    # mixed-order key A' = [a] B + T8: a message whose h is 0 mod 8 passes cofactorless, others only cofactored
    mixed = ed.encode(ed.add(ed.mul(a, ed.B), t8))
    rp = ed.encode(ed.mul(r, ed.B))
    for i in range(200):
        m = msg + b" #%d" % i
        h = ed.challenge(rp, mixed, m)
        if h % 8 == 0:
            out.append(("mixed-order key, h = 0 mod 8", mixed, m, rp + ((r + h * a) % ed.L).to_bytes(32, "little")))
            break
    m = msg + b" #odd"
    h = ed.challenge(rp, mixed, m)
    out.append(("mixed-order key", mixed, m, rp + ((r + h * a) % ed.L).to_bytes(32, "little")))
    # non-canonical encodings (y >= p) of points that are not small-order
    for y in range(2, 19):
        for sign in (0, 1):
            enc = _enc_int(y + ed.P | sign << 255)
            if _lenient(enc) is not None and ed.encode(_lenient(enc)) not in {e for _, e in small_order_encodings()}:
                out.append((f"non-canonical key y={y}+p sign={sign}", enc, msg, good))
    return out


def raw_accepts(which: str, public: bytes, message: bytes, signature: bytes) -> bool:
    """What the library itself says, without the strict rules (the behaviour before)."""
    try:
        if which == "cryptography":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
            return True
        from Crypto.Signature import eddsa

        eddsa.new(eddsa.import_public_key(public), "rfc8032").verify(message, signature)
        return True
    except Exception:
        return False


VECTORS = edge_vectors()


@pytest.fixture(params=BACKENDS)
def which(request):
    if request.param != "python":
        pytest.importorskip({"cryptography": "cryptography", "pycryptodome": "Crypto"}[request.param])
    return request.param


@pytest.mark.parametrize("secret,public,message,sig", RFC8032)
def test_rfc8032_vectors_on_every_backend(which, secret, public, message, sig):
    pub, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(sig)
    assert SigningKey(bytes.fromhex(secret)).public_bytes == pub
    assert SigningKey(bytes.fromhex(secret)).sign(msg) == sig
    assert signing._verify_with(which, pub, msg, sig)
    assert not signing._verify_with(which, pub, msg + b"\0", sig)
    assert public_key_problem(pub) is None


def test_small_order_points_are_the_torsion_subgroup():
    pts = ed.torsion_points()
    encs = {ed.encode(p) for p in pts}
    assert len(encs) == 8
    assert all(ed.encode(ed.mul(8, p)) == ed.encode(ed.IDENTITY) for p in pts)
    assert all(ed.decode(e) is None for n, e in small_order_encodings() if not n.startswith("canonical"))
    assert all(ed.encode(_lenient(e)) in encs for _, e in small_order_encodings())
    assert len(small_order_encodings()) == 14


@pytest.mark.parametrize("name,public,message,sig", VECTORS, ids=[v[0] for v in VECTORS])
def test_edge_vector_refused_on_every_backend(which, name, public, message, sig):
    assert signing._verify_with(which, public, message, sig) is False


def test_the_attacks_were_real_before():
    """Each library alone accepts some of these: the strict rules are what refuses them."""
    pytest.importorskip("Crypto")
    pytest.importorskip("cryptography")
    names = {"cryptography": set(), "pycryptodome": set()}
    for name, pub, msg, sig in VECTORS:
        for lib in names:
            if raw_accepts(lib, pub, msg, sig):
                names[lib].add(name)
    forged = {n for n, *_ in VECTORS if n.startswith("forgery")}
    # a signature of an arbitrary message by nobody, accepted by both libraries
    assert "forgery, small-order key (canonical torsion 0)" in names["cryptography"] & names["pycryptodome"]
    assert forged <= names["cryptography"] and len(forged & names["pycryptodome"]) >= 6
    # pycryptodome alone (cofactored, S <= L) accepts what OpenSSL refuses: the backends disagreed
    assert {"S = L, identity key", "mixed-order R", "mixed-order key"} <= names["pycryptodome"] - names["cryptography"]
    assert "mixed-order key, h = 0 mod 8" in names["cryptography"] & names["pycryptodome"]


def test_public_key_problem_names_the_defect():
    ident = ed.encode(ed.IDENTITY)
    assert "prime order" in public_key_problem(ident)
    assert "canonical" in public_key_problem(_enc_int(ed.P + 1))
    assert "32 bytes" in public_key_problem(ident[:31])
    assert "32 bytes" in public_key_problem(type("B", (bytes,), {})(ident))
    mixed = [v[1] for v in VECTORS if v[0] == "mixed-order key"][0]
    assert "prime order" in public_key_problem(mixed)
