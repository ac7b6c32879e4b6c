"""Helpers shared by the ledger tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name

NAMES = ("alice", "bob", "vera", "trez", "mallory")


class Parties:
    """Named keys for the usual cast: consumer alice, provider bob, verifier vera,
    treasury trez and stranger mallory, each with an account and 1000 units."""

    def __init__(self, led, fund: int = 1000, setup: bool = True) -> None:
        self.minter = vl.default_minter()
        self.keys = {n: key_from_name(n) for n in NAMES}
        for n, k in self.keys.items() if setup else ():
            led.open_account(k, n, op_id=f"open-{n}")
            if fund:
                led.mint(self.minter, n, fund, op_id=f"fund-{n}")

    def __getattr__(self, name: str):
        try:
            return self.__dict__["keys"][name]
        except KeyError:
            raise AttributeError(name) from None


def snapshot(led, escrows=(), commitments=()):
    """Everything observable about a ledger, for "nothing changed" checks."""
    out = {"supply": led.total_supply(), "holdings": led.holdings()}
    for n in led.accounts():
        out[f"bal/{n}"] = led.balance(n)
        out[f"stk/{n}"] = led.stake(n)
    for e in escrows:
        try:
            out[f"esc/{e}"] = led.escrow(e)
        except vl.NotFound:
            out[f"esc/{e}"] = None
    for c in commitments:
        try:
            out[f"com/{c}"] = led.commitment(c)
        except vl.NotFound:
            out[f"com/{c}"] = None
    return out


def fresh_parties(led):
    """``Parties(led)``; on the EVM the setup runs once and is then restored from a chain snapshot."""
    if not led.url.startswith("evm") or led.url.startswith("evm+"):
        # A node (anvil) drops every snapshot newer than the one it reverts to, so the parties'
        # snapshot would not survive the next test's reset: set them up afresh there.
        return Parties(led)
    snap = getattr(led, "_parties_snapshot", None)
    if snap is None:
        led.reset()
        p = Parties(led)
    else:
        led.rollback(snap)
        p = Parties(led, setup=False)
    led._parties_snapshot = led.checkpoint()  # reverting consumes a snapshot: take it again
    return p


def contract_call(led, key, fn, args, types=None, send=False):
    """Call the VLedger contract directly as ``key``'s EVM account, bypassing the Python client.

    ``types`` overrides the ABI types used to encode ``args`` (e.g. ``bytes`` in place of
    ``string``, the same encoding, to send bytes the client could never produce).

    Returns:
        The revert reason, or ``""`` if the call succeeded (``send=True``: mined as a transaction).
    """
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    entry = next(f for f in led._abi if f.get("type") == "function" and f["name"] == fn)
    sig = f"{fn}({','.join(i['type'] for i in entry['inputs'])})"
    data = "0x" + (function_signature_to_4byte_selector(sig)
                   + encode(types or [i["type"] for i in entry["inputs"]], list(args))).hex()
    sender = led._account_of(key).address
    if led.chain.balance(sender) == 0:
        led.chain.send_from_node({"to": sender, "value": 10**20})
    led._invalidate()
    try:
        if send:
            rc = led._send_signed(key, sender, data)
            if rc.get("status", 1):
                return ""
        led.chain.call(sender, led.address, data, "latest" if send else "pending")
    except Exception as e:  # noqa: BLE001 - a revert: its reason is the answer
        reason = led.chain.revert_reason(e)
        assert reason is not None, f"{fn} failed without reverting: {e}"
        return reason.split("execution reverted:", 1)[-1].strip().strip("'\"")
    return ""


# -- hostile objects: they lie in ==, <, hash and arithmetic ------------------------

class LyingInt(int):
    """Passes every range check, then creates money in arithmetic."""

    def __lt__(self, o): return False
    def __le__(self, o): return True
    def __gt__(self, o): return o == 0  # ``0 < x`` holds, ``balance < x`` (funds check) does not
    def __ge__(self, o): return True
    def __rsub__(self, o): return int(o) + 10**6
    def __radd__(self, o): return int(o) + 10**6
    __hash__ = int.__hash__


class EveryName(str):
    """Equal to every name: as a verifier it would be everybody."""

    def __eq__(self, o): return True
    def __ne__(self, o): return False
    __hash__ = str.__hash__


class LyingBytes(bytes):
    """mallory's public key that claims to equal any other."""

    def __eq__(self, o): return True
    def __ne__(self, o): return False
    __hash__ = bytes.__hash__


class Wrapped:
    """A key object that forwards to a real key but reports ``public_bytes`` of its choosing."""

    def __init__(self, key, public):
        self.key, self.public_bytes = key, public

    def sign(self, m):
        return self.key.sign(m)

    def derive_secret(self, label):
        return self.key.derive_secret(label)


class DictLike(dict):
    """A dict subclass (its items could be anything by the time they are read)."""


HOSTILE_AMOUNTS = (LyingInt(5), True, 5.0, 10**18 + 1, 2**256, -3, "5", None)
HOSTILE_NAMES = (EveryName("bob"), "bob\n", "bøb", "b\ud800", "", "b" * 65, b"bob", None)
HOSTILE_OP_IDS = ("op\ud800", "op\n", EveryName("op0"), 7, "", "x" * 129, "é", b"op0")
HOSTILE_METADATA = ({"x": LyingInt(1)}, {"x": 1.0}, {"x": float("nan")}, {"x": {"y": 1}}, {"bad key": 1},
                    {"x": "a\nb"}, {"x": "\ud800"}, {"x": 10**18}, DictLike(x=1), {EveryName("x"): 1})
