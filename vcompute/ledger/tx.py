"""EIP-1559 (type 2) transactions signed with libsecp256k1 directly: the ledger client's hot path on a node.

``eth_account``'s ``sign_transaction`` validates and re-serialises a dict
through several layers (~1.8 ms a transaction here, most of the client's time
against anvil), and pyrlp infers a codec for every field. The ledger client
only ever sends one shape of transaction (a call to its contract, no access
list), so it writes the RLP itself and signs its keccak hash with coincurve
(RFC 6979 deterministic nonces, low-s): the bytes are identical to
``eth_account``'s (``tests/ledger/test_tx.py``), at ~0.1 ms.

Example:
    >>> raw = sign_1559(b"\\x01" * 32, chain_id=31337, nonce=0, max_priority_fee=1, max_fee=2 * 10**9,
    ...                 gas=100_000, to="0x" + "ab" * 20, value=0, data=b"")
    >>> raw[:1] == b"\\x02"
    True
"""

from __future__ import annotations

__all__ = ["rlp_encode", "sign_1559"]

_KEYS: dict[bytes, object] = {}  # secret -> coincurve.PrivateKey (its precomputation is most of a signature)


def _length(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(b)]) + b


def rlp_encode(item: bytes | int | list) -> bytes:
    """RLP of a byte string, a non-negative int (big-endian, no leading zeros) or a list of them.

    Raises:
        TypeError: for anything else (a bool or a negative int included).

    Example:
        >>> rlp_encode([b"dog", 0, 1024]).hex()
        'c883646f6780820400'
    """
    if type(item) is int and item >= 0:
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if type(item) is bytes:
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _length(len(item), 0x80) + item
    if type(item) is list:
        body = b"".join(rlp_encode(x) for x in item)
        return _length(len(body), 0xC0) + body
    raise TypeError(f"rlp_encode takes bytes, non-negative ints and lists of them, got {type(item).__name__}")


def sign_1559(secret: bytes, *, chain_id: int, nonce: int, max_priority_fee: int, max_fee: int, gas: int,
              to: str, value: int, data: bytes) -> bytes:
    """The raw bytes of a signed type-2 transaction (empty access list).

    Args:
        secret: the sender's 32-byte secp256k1 private key.
        chain_id, nonce, max_priority_fee, max_fee, gas, value: the transaction's integers (wei, gas).
        to: the recipient's 20-byte address, hex.
        data: the calldata.

    Returns:
        ``0x02 || rlp([chain_id, nonce, tip, max_fee, gas, to, value, data, [], y_parity, r, s])``.

    Raises:
        ValueError: for a key that is not 32 bytes or an address that is not 20.
    """
    from vcompute.ledger.abi import keccak256

    secret = bytes(secret)
    dest = bytes.fromhex(to[2:] if to[:2] in ("0x", "0X") else to)
    if len(secret) != 32 or len(dest) != 20:
        raise ValueError("sign_1559 needs a 32-byte secret and a 20-byte `to` address")
    fields = [int(chain_id), int(nonce), int(max_priority_fee), int(max_fee), int(gas), dest, int(value),
              bytes(data), []]
    digest = keccak256(b"\x02" + rlp_encode(fields))
    key = _KEYS.get(secret)
    if key is None:
        from coincurve import PrivateKey

        if len(_KEYS) > 4096:
            _KEYS.clear()
        key = _KEYS[secret] = PrivateKey(secret)
    sig = key.sign_recoverable(digest, hasher=None)
    r, s, y = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    return b"\x02" + rlp_encode([*fields, y, r, s])
