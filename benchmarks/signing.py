"""Strict Ed25519 verification vs each library's own verifier, side by side in one run.

Prints verifications per second for ``cryptography`` (OpenSSL) and
pycryptodome, each as the raw library call (the behaviour before the strict
rules of :mod:`vcompute.core.signing`) and as
``vcompute.core.signing._verify_with`` (strict: prime-order key check,
cached per key; ``S < L``; cofactorless on encodings), and the ratio
strict / raw. One key signs every message, as on a ledger with few accounts.

Run: python benchmarks/signing.py [--n 2000]
"""

from __future__ import annotations

import argparse
import time


def _rate(fn, items) -> float:
    t = time.perf_counter()
    for args in items:
        if not fn(*args):
            raise AssertionError("an honest signature failed")
    return len(items) / (time.perf_counter() - t)


def _raw_cryptography(pub, msg, sig):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    return True


def _raw_pycryptodome(pub, msg, sig):
    from Crypto.Signature import eddsa

    eddsa.new(eddsa.import_public_key(pub), "rfc8032").verify(msg, sig)
    return True


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="signatures per measurement (pycryptodome: n/10)")
    args = ap.parse_args()
    from vcompute.core import signing

    key = signing.key_from_name("bench")
    items = [(key.public_bytes, b"entry %d" % i, key.sign(b"entry %d" % i)) for i in range(args.n)]
    signing.verify(*items[0])  # warm the per-key cache, as a running ledger has it
    print(f"{'backend':14s} {'raw/s':>9s} {'strict/s':>9s} {'strict/raw':>10s}")
    for name, raw, n in (("cryptography", _raw_cryptography, args.n), ("pycryptodome", _raw_pycryptodome, args.n // 10)):
        r = _rate(raw, items[:n])
        s = _rate(lambda p, m, g, name=name: signing._verify_with(name, p, m, g), items[:n])
        print(f"{name:14s} {r:9.0f} {s:9.0f} {s / r:10.2f}")


if __name__ == "__main__":
    main()
