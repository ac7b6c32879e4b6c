"""``memory://``: the in-process ledger (the default for simulations).

Authorisation: the caller must hold the :class:`~vcompute.core.signing.SigningKey`
whose public key the account is bound to. Each key object proves it once per
ledger (:func:`~vcompute.ledger.base.prove_holder`: it signs a challenge naming
this ledger's random id and a fresh sequence number, which must verify against
the public key it claims; an object that later claims another public key proves
again), so an object that merely carries someone's public key cannot act for
them, and a proof captured on one ledger is worth nothing on another
(``tests/ledger/test_authorisation.py``). A key object this process built from
its secret seed (exactly a ``SigningKey``, still showing the key computed from
the seed: :func:`~vcompute.core.signing.built_public`) has proven possession by
construction and signs no challenge (a market run opens 10^4 accounts). Requests are
not signed one by one (~160 us each, and nothing outside the process sees
them); the durable ``sqlite://`` backend signs and chains every entry.

The per-request path is validated inline (a key object that already proved,
exact builtins in canonical form, a fresh op id), falling back to the generic
path for anything else so both raise the same errors. A caller that derived
and validated its requests itself (a market run's
:class:`~vcompute.market.settlement.Settlement`) applies them with
:meth:`MemoryLedger.apply_proven`, which still enforces every rule of the state
machine and counts the operation, but builds no receipt.
"""

from __future__ import annotations

import os
from typing import Any

from vcompute.ledger.base import ClockFn, KeyProofs, Ledger, ManualClock, public_of
from vcompute.ledger.canonical import _NAME, MAX_AMOUNT, check_op_id
from vcompute.ledger.queries import StateQueries
from vcompute.ledger.records import Receipt
from vcompute.ledger.state import LedgerState, normalise_args

__all__ = ["MemoryLedger"]


class MemoryLedger(StateQueries, Ledger):
    """A ledger held in a Python object.

    Args:
        minter: public key allowed to mint.
        clock: ledger time source; default a :class:`ManualClock` at 0.
        withdraw_delay: seconds between unbonding and withdrawing stake.
        url: the URL it was opened with (for messages).

    Example:
        >>> from vcompute.core.signing import key_from_name
        >>> m, a = key_from_name("minter"), key_from_name("alice")
        >>> led = MemoryLedger(minter=m.public_bytes)
        >>> _ = led.open_account(a, "alice", op_id="a")
        >>> _ = led.mint(m, "alice", 10, op_id="m1")
        >>> led.balance("alice")
        10
    """

    def __init__(self, *, minter: bytes, clock: ClockFn | None = None, withdraw_delay: float = 0.0,
                 url: str = "memory://") -> None:
        self.url = url
        self.minter_public = bytes(minter)
        self.clock = clock if clock is not None else ManualClock()
        self.state = LedgerState(self.minter_public, withdraw_delay)
        # No rows to write: the rules' note of what each request touched (for the durable
        # backend's row updates) is dropped here rather than kept and cleared per request.
        self.state.touched = _NoRows()
        self.withdraw_delay = float(withdraw_delay)
        #: A random id naming this ledger in key proofs.
        self.ledger_id = os.urandom(16).hex()
        self._keys = KeyProofs(b"memory:" + self.ledger_id.encode())
        self._op_seqs = bytearray()  # what Ledger._count keeps, made here for the fast path
        self._op_counts: dict[str, int] = {}

    def now(self) -> float:
        """The clock's current time."""
        return float(self.clock())

    def _submit(self, kind: str, by: Any, op_id: str, args: tuple) -> Receipt:
        public_of(by)
        return self._apply(kind, by, op_id, normalise_args(kind, args))

    def _fast(self, kind: str, by: Any, op_id: str, args: tuple, now: float) -> Receipt:
        # ``args`` passed the exact checks of a fast path below: what normalise_args returns
        # unchanged. The checks are those of _submit + _apply + _count, in their order, each
        # done once: a key object that already proved (KeyProofs.proven), a fresh op id.
        pub = self._keys.proven(by)
        if pub is None or not (type(op_id) is str and 0 < len(op_id) <= 128 and op_id.isascii()
                               and op_id.isprintable()):
            public_of(by)
            check_op_id(op_id)
            pub = self._keys.holder(by)
        st = self.state
        mine = st.ops.get(pub)
        if mine is not None and op_id in mine:  # a retry, or an op id reused for another request
            r = st.apply_valid(kind, pub, op_id, args, now)
            st.touched.clear()
            return self._count(r)
        seq = st.apply_new(kind, pub, op_id, args, now)
        st.touched.clear()
        self._counted(kind, seq)
        return _receipt(op_id, kind, seq)

    def prove(self, by: Any) -> bytes:
        """Have ``by`` prove, once per key object, that it holds its key's secret; return that key.

        Raises:
            InvalidRequest: if ``by`` is not a signing key.
            Unauthorized: if it does not hold the secret of the key it claims.
        """
        public_of(by)
        return self._keys.holder(by)

    def apply_proven(self, kind: str, pub: bytes, op_id: str, args: tuple) -> int:
        """Apply a request its caller derived and validated itself; return its log position.

        The trusted in-process path of a market run's settlement
        (:class:`~vcompute.market.settlement.Settlement`), which makes millions of them. The
        caller vouches for what the public methods check per request: ``pub`` is a key that
        :meth:`prove` returned, ``op_id`` passes :func:`~vcompute.ledger.canonical.check_op_id`,
        ``args`` are what :func:`~vcompute.ledger.state.normalise_args` returns for them. Every
        rule of the state machine still applies (balances, roles, escrow states: a refused
        request raises and changes nothing), a retry still replays and a reused op id still
        conflicts, and the operation is counted in :meth:`op_counts`; no receipt is built.

        Raises:
            LedgerError: the request is refused; nothing changed.
        """
        st = self.state
        now = float(self.clock())
        mine = st.ops.get(pub)
        if mine is not None and op_id in mine:
            r = st.apply_valid(kind, pub, op_id, args, now)
            return self._count(r).seq
        # st.apply_new(kind, pub, op_id, args, now), inline: its request kinds other than these
        # two (which a market run sends once per account) take its own path.
        if kind == "open_account" or kind == "mint":
            seq = st.apply_new(kind, pub, op_id, args, now)
        else:
            actor = st.name_of.get(pub)
            if actor is None or mine is None:
                seq = st.apply_new(kind, pub, op_id, args, now)  # raises UnknownAccount, or makes ``mine``
            else:
                st._handlers[kind](actor, pub, now, *args)
                seq = st.seq
                mine[op_id] = (kind, seq, *args)
                st.seq = seq + 1
        seen = self._op_seqs  # self._counted(kind, seq), inline (millions of calls in a run)
        byte = seq >> 3
        if byte >= len(seen):
            seen.extend(bytes(max(byte + 1 - len(seen), len(seen))))
        seen[byte] |= 1 << (seq & 7)
        counts = self._op_counts
        counts[kind] = counts.get(kind, 0) + 1
        return seq

    def _counted(self, kind: str, seq: int) -> None:
        # Ledger._count for a log position never seen before (a fresh one): set its bit, count it.
        seen = self._op_seqs
        byte = seq >> 3
        if byte >= len(seen):
            seen.extend(bytes(max(byte + 1 - len(seen), len(seen))))
        seen[byte] |= 1 << (seq & 7)
        counts = self._op_counts
        counts[kind] = counts.get(kind, 0) + 1

    def _apply(self, kind: str, by: Any, op_id: str, args: tuple) -> Receipt:
        check_op_id(op_id)
        # holder() returns only an exact 32-byte key it proved, and op_id was checked above.
        r = self.state.apply_valid(kind, self._keys.holder(by), op_id, args, float(self.clock()))
        self.state.touched.clear()
        return r

    # The per-job operations of a market run, each with its common case validated inline: exact
    # builtins of the canonical form are what normalise_args would return unchanged. Anything
    # else takes the generic path, so both raise the same errors.

    def escrow_open(self, by: Any, escrow_id: str, *, provider: str, amount: int, deadline: float,
                    verifier: str | None = None, op_id: str) -> Receipt:
        """Hold ``amount`` of ``by``'s balance for ``provider`` (see :meth:`Ledger.escrow_open`)."""
        if (_name(escrow_id) and _name(provider) and _amount(amount) and type(deadline) is float
                and 0.0 <= deadline <= 2.0**40 and (verifier is None or _name(verifier))):
            return self._fast("escrow_open", by, op_id, (escrow_id, provider, amount, deadline + 0.0, verifier),
                              float(self.clock()))
        return super().escrow_open(by, escrow_id, provider=provider, amount=amount, deadline=deadline,
                                   verifier=verifier, op_id=op_id)

    def escrow_release(self, by: Any, escrow_id: str, *, op_id: str) -> Receipt:
        """Pay an open escrow to its provider (see :meth:`Ledger.escrow_release`)."""
        if _name(escrow_id):
            return self._fast("escrow_release", by, op_id, (escrow_id,), float(self.clock()))
        return super().escrow_release(by, escrow_id, op_id=op_id)

    def escrow_refund(self, by: Any, escrow_id: str, *, op_id: str) -> Receipt:
        """Return an open escrow to its consumer (see :meth:`Ledger.escrow_refund`)."""
        if _name(escrow_id):
            return self._fast("escrow_refund", by, op_id, (escrow_id,), float(self.clock()))
        return super().escrow_refund(by, escrow_id, op_id=op_id)

    def stake_lock(self, by: Any, escrow_id: str, amount: int, *, op_id: str) -> Receipt:
        """Lock free stake against an open escrow (see :meth:`Ledger.stake_lock`)."""
        if _name(escrow_id) and _amount(amount):
            return self._fast("stake_lock", by, op_id, (escrow_id, amount), float(self.clock()))
        return super().stake_lock(by, escrow_id, amount, op_id=op_id)

    def stake_slash(self, by: Any, escrow_id: str, amount: int, *, to: str, op_id: str) -> Receipt:
        """Move stake locked against ``escrow_id`` to ``to`` (see :meth:`Ledger.stake_slash`)."""
        if _name(escrow_id) and _amount(amount) and _name(to):
            return self._fast("stake_slash", by, op_id, (escrow_id, amount, to), float(self.clock()))
        return super().stake_slash(by, escrow_id, amount, to=to, op_id=op_id)

    def transfer(self, by: Any, to: str, amount: int, *, op_id: str) -> Receipt:
        """Move ``amount`` from ``by``'s balance to ``to`` (same rules, a faster path)."""
        # The hot path of every simulation: validate the common case inline
        # instead of through the generic normalise_args loop.
        if type(amount) is int and 0 < amount <= MAX_AMOUNT and type(to) is str and _NAME.fullmatch(to):
            return self._fast("transfer", by, op_id, (to, amount), 0.0)
        public_of(by)
        args = normalise_args("transfer", (to, amount))
        check_op_id(op_id)
        r = self.state.apply_valid("transfer", self._keys.holder(by), op_id, args, 0.0)
        self.state.touched.clear()
        return self._count(r)


class _NoRows:
    """What :attr:`LedgerState.touched` is for a backend with no rows to update: a set whose
    ``add``, ``update`` and ``clear`` keep nothing (builtins, so each costs a C call, no frame)."""

    __slots__ = ()
    add = update = staticmethod(id)
    clear = staticmethod(tuple)

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


_new = object.__new__


def _receipt(op_id: str, kind: str, seq: int) -> Receipt:
    """``Receipt(op_id, kind, seq)`` without the frozen dataclass's per-field ``object.__setattr__``
    (half the cost of a memory operation's receipt): the same fields in the instance dict."""
    r = _new(Receipt)
    r.__dict__.update(op_id=op_id, kind=kind, seq=seq, replayed=False, ref="")
    return r


def _name(x: object) -> bool:
    return type(x) is str and _NAME.fullmatch(x) is not None


def _amount(x: object) -> bool:
    return type(x) is int and 0 < x <= MAX_AMOUNT


def open_memory(url: str, *, minter: bytes, clock: ClockFn | None = None, withdraw_delay: float = 0.0,
                **unknown: Any) -> MemoryLedger:
    """Factory for ``memory://`` URLs (registered in :data:`vcompute.ledger.LEDGERS`).

    Raises:
        InvalidURL: if the URL has a location or unknown options.
    """
    from urllib.parse import urlsplit

    from vcompute.ledger.errors import InvalidURL

    if unknown:
        raise InvalidURL(f"unknown option(s) {sorted(unknown)} for {url!r}; memory:// takes withdraw_delay")
    if urlsplit(url).netloc or urlsplit(url).path not in ("", "/"):
        raise InvalidURL(f"memory ledgers take no location: use 'memory://', got {url!r}")
    return MemoryLedger(minter=minter, clock=clock, withdraw_delay=withdraw_delay, url=url)
