"""The :class:`Ledger` interface every backend implements.

Each mutating method takes the acting party's :class:`~vcompute.core.signing.SigningKey`
first (``by``), its arguments, and a keyword-only client-chosen ``op_id``.
Backends implement four hooks: :meth:`Ledger._submit` (apply one request),
the read queries, :meth:`Ledger.now` and :meth:`Ledger.close`.
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Callable
from typing import Any

from vcompute.ledger.errors import InvalidRequest, LedgerError
from vcompute.ledger.records import Account, Commitment, Escrow, Receipt, Stake

__all__ = ["KeyProofs", "Ledger", "ManualClock", "prove_holder", "public_of"]


class ManualClock:
    """A clock that only moves when told to: deterministic ledger time for simulations and tests.

    Args:
        start: the initial time in seconds.

    Example:
        >>> c = ManualClock()
        >>> c.advance(2.5); c()
        2.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0).

        Raises:
            ValueError: if ``seconds`` is negative.
        """
        if not seconds >= 0:
            raise ValueError(f"time only moves forward; got {seconds}")
        self.t += float(seconds)


class Ledger(abc.ABC):
    """Accounts, balances, escrows, stakes and commitments with one set of rules.

    See :mod:`vcompute.ledger` for the semantics of each operation. All
    mutating methods return a :class:`Receipt` and raise a
    :class:`~vcompute.ledger.errors.LedgerError` (changing nothing) when refused.
    """

    url: str = ""
    #: The public key allowed to mint.
    minter_public: bytes = b""

    # -- backend hooks -----------------------------------------------------

    @abc.abstractmethod
    def _submit(self, kind: str, by: Any, op_id: str, args: tuple) -> Receipt:
        """Apply one request on behalf of ``by`` (a SigningKey)."""

    @abc.abstractmethod
    def now(self) -> float:
        """The ledger time in seconds (deadlines and withdrawal delays use it)."""

    def advance(self, seconds: float) -> None:
        """Move ledger time forward (manual clocks and test chains only).

        Raises:
            LedgerError: if this ledger's clock cannot be moved.
        """
        clock = getattr(self, "clock", None)
        if not isinstance(clock, ManualClock):
            raise LedgerError(f"{self.url}: ledger time follows an external clock and cannot be advanced; "
                              "open the ledger with clock=ManualClock() to control time")
        clock.advance(seconds)

    def _count(self, receipt: Receipt) -> Receipt:
        # By log position, not by ``replayed``: a retry whose first attempt was applied but lost
        # its receipt (a dropped connection) is the first this object hears of that operation.
        # One bit per log position (a set of ints would cost ~60 bytes per operation of a long run).
        d = self.__dict__
        seen = d.get("_op_seqs")
        if seen is None:  # (not setdefault: that would build a fresh default on every operation)
            seen = d["_op_seqs"] = bytearray()
        seq = receipt.seq
        if type(seq) is int and seq >= 0:
            byte, bit = divmod(seq, 8)
            if byte >= len(seen):
                seen.extend(bytes(max(byte + 1 - len(seen), len(seen))))
            if seen[byte] >> bit & 1:
                return receipt
            seen[byte] |= 1 << bit
        counts = d.get("_op_counts")
        if counts is None:
            counts = d["_op_counts"] = {}
        counts[receipt.kind] = counts.get(receipt.kind, 0) + 1
        return receipt

    def op_counts(self) -> dict[str, int]:
        """Operations applied through this ledger object, by kind: what settling them on a chain
        would cost gas for (:func:`vcompute.ledger.gas.settlement_gas`).

        Each operation is counted once, by its position in the log: a retry of one already
        counted is not counted again, a retry whose first attempt was applied but never
        acknowledged (its receipt lost) is. A refused operation (it raised) is not counted; the
        operations of a SQLite batch that was rolled back stay counted.

        Example:
            >>> import vcompute.ledger as vl
            >>> from vcompute.core.signing import key_from_name
            >>> led = vl.open("memory://")
            >>> _ = led.open_account(key_from_name("a"), "a", op_id="o")
            >>> _ = led.open_account(key_from_name("a"), "a", op_id="o")  # a retry
            >>> led.op_counts()
            {'open_account': 1}
        """
        return dict(self.__dict__.get("_op_counts", {}))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (files, connections). Idempotent."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -----------------------------------------------------------

    @abc.abstractmethod
    def account(self, name: str) -> Account:
        """The account ``name`` (raises ``UnknownAccount``)."""

    @abc.abstractmethod
    def accounts(self) -> list[str]:
        """Names of all accounts, sorted."""

    @abc.abstractmethod
    def balance(self, name: str) -> int:
        """Spendable balance of ``name`` (raises ``UnknownAccount``)."""

    @abc.abstractmethod
    def escrow(self, escrow_id: str) -> Escrow:
        """The escrow ``escrow_id`` (raises ``NotFound``)."""

    @abc.abstractmethod
    def stake(self, name: str) -> Stake:
        """The stake of ``name`` (raises ``UnknownAccount``)."""

    @abc.abstractmethod
    def commitment(self, commitment_id: str) -> Commitment:
        """The commitment ``commitment_id`` (raises ``NotFound``)."""

    @abc.abstractmethod
    def total_supply(self) -> int:
        """Everything ever minted minus everything burned."""

    @abc.abstractmethod
    def holdings(self) -> int:
        """Sum of balances, open escrows and stakes; equals :meth:`total_supply` always."""

    # -- operations --------------------------------------------------------

    def open_account(self, by: Any, name: str, *, op_id: str) -> Receipt:
        """Create account ``name`` bound to ``by``'s public key (one account per key)."""
        return self._count(self._submit("open_account", by, op_id, (name,)))

    def mint(self, by: Any, to: str, amount: int, *, op_id: str) -> Receipt:
        """Create ``amount`` new money in ``to``'s balance (``by`` must be the minter)."""
        return self._count(self._submit("mint", by, op_id, (to, amount)))

    def burn(self, by: Any, amount: int, *, op_id: str) -> Receipt:
        """Destroy ``amount`` of ``by``'s own balance."""
        return self._count(self._submit("burn", by, op_id, (amount,)))

    def transfer(self, by: Any, to: str, amount: int, *, op_id: str) -> Receipt:
        """Move ``amount`` from ``by``'s balance to ``to``."""
        return self._count(self._submit("transfer", by, op_id, (to, amount)))

    def escrow_open(self, by: Any, escrow_id: str, *, provider: str, amount: int, deadline: float,
                    verifier: str | None = None, op_id: str) -> Receipt:
        """Hold ``amount`` of ``by``'s balance for a job done by ``provider``.

        Args:
            by: the consumer's key.
            escrow_id: a fresh id (never reused).
            provider: who is paid on release (not the consumer).
            amount: what is held.
            deadline: ledger time after which the consumer may take a refund (must be in the future).
            verifier: an account that may also release, refund and slash (neither consumer
                nor provider), or None.
            op_id: the client-chosen operation id.
        """
        return self._count(self._submit("escrow_open", by, op_id, (escrow_id, provider, amount, deadline, verifier)))

    def escrow_release(self, by: Any, escrow_id: str, *, op_id: str) -> Receipt:
        """Pay an open escrow to its provider (consumer or verifier only); frees locked stake."""
        return self._count(self._submit("escrow_release", by, op_id, (escrow_id,)))

    def escrow_refund(self, by: Any, escrow_id: str, *, op_id: str) -> Receipt:
        """Return an open escrow to its consumer (verifier any time; consumer or provider after the deadline)."""
        return self._count(self._submit("escrow_refund", by, op_id, (escrow_id,)))

    def stake_deposit(self, by: Any, amount: int, *, op_id: str) -> Receipt:
        """Move ``amount`` of ``by``'s balance into free stake."""
        return self._count(self._submit("stake_deposit", by, op_id, (amount,)))

    def stake_lock(self, by: Any, escrow_id: str, amount: int, *, op_id: str) -> Receipt:
        """Lock free stake against an open escrow of which ``by`` is the provider."""
        return self._count(self._submit("stake_lock", by, op_id, (escrow_id, amount)))

    def stake_slash(self, by: Any, escrow_id: str, amount: int, *, to: str, op_id: str) -> Receipt:
        """Move ``amount`` of the stake locked against ``escrow_id`` to ``to`` (its verifier only; never the provider)."""
        return self._count(self._submit("stake_slash", by, op_id, (escrow_id, amount, to)))

    def stake_unbond(self, by: Any, amount: int, *, op_id: str) -> Receipt:
        """Start withdrawing free stake; it becomes withdrawable after the ledger's delay."""
        return self._count(self._submit("stake_unbond", by, op_id, (amount,)))

    def stake_withdraw(self, by: Any, *, op_id: str) -> Receipt:
        """Move all matured unbonding stake back to ``by``'s balance."""
        return self._count(self._submit("stake_withdraw", by, op_id, ()))

    def commit(self, by: Any, commitment_id: str, digest: bytes, *, metadata: dict | None = None,
               op_id: str) -> Receipt:
        """Post an immutable 32-byte ``digest`` with small JSON ``metadata``."""
        return self._count(self._submit("commit", by, op_id, (commitment_id, digest, metadata)))


def public_of(by: Any) -> bytes:
    """The 32-byte public key a signing key claims (not yet proven: see :func:`prove_holder`).

    Raises:
        InvalidRequest: if ``by`` is not a signing key, or its ``public_bytes`` is not
            exactly 32 builtin ``bytes`` (a subclass could lie in ``==`` and ``hash``).
    """
    pub = getattr(by, "public_bytes", None)
    if not (type(pub) is bytes and len(pub) == 32 and callable(getattr(by, "sign", None))):
        raise InvalidRequest(f"`by` must be a vcompute.core.signing.SigningKey, got {type(by).__name__}")
    return pub


def prove_holder(by: Any, context: bytes, nonce: bytes) -> bytes:
    """Check that ``by`` holds the secret of the public key it claims; return that key.

    ``by`` signs a challenge naming ``context`` (which ledger asks: its id) and a
    fresh ``nonce``, so a signature captured from one proof neither spends on
    another ledger nor replays on this one.

    Args:
        by: the key object.
        context: bytes naming the ledger (and purpose) that asks.
        nonce: bytes never used before for a proof by this ledger.

    Returns:
        The proven 32-byte public key.

    Raises:
        InvalidRequest: if ``by`` is not a signing key.
        Unauthorized: if its signature does not verify against the public key it claims.
    """
    from vcompute.core.signing import verify
    from vcompute.ledger.errors import Unauthorized

    pub = public_of(by)
    challenge = b"vcompute-ledger-proof-of-key\x00" + context + b"\x00" + nonce + b"\x00" + pub
    sig = by.sign(challenge)
    if type(sig) is not bytes or not verify(pub, challenge, sig):
        raise Unauthorized("the signing key does not hold the secret of the public key it claims; "
                           "pass the SigningKey itself as `by`")
    return pub


class KeyProofs:
    """Which key objects have proven, on one ledger, that they hold their public key's secret.

    Each object proves once (:func:`prove_holder` with this ledger's context and the
    next sequence number); an object that later claims another public key, or a new
    object, proves again, so a captured signature is never worth a second proof. A
    :class:`~vcompute.core.signing.SigningKey` this process built from its seed has proven
    it by construction (:func:`~vcompute.core.signing.built_public`) and signs nothing:
    the ledger is in the same process, and only the object built from the secret is vouched for.

    Args:
        context: bytes naming the ledger (e.g. ``b"memory:" + ledger_id``).
    """

    def __init__(self, context: bytes) -> None:
        self.context = bytes(context)
        self.seq = 0
        self._proven: dict[int, tuple[Any, bytes]] = {}

    def holder(self, by: Any) -> bytes:
        """The public key ``by`` holds the secret of.

        Act for the key returned here and nothing read from ``by`` before or after: an
        object may show a different ``public_bytes`` on each read.

        Raises:
            InvalidRequest: if ``by`` is not a signing key.
            Unauthorized: if it does not hold the secret of the key it claims.
        """
        pub = public_of(by)
        ent = self._proven.get(id(by))
        if ent is not None and ent[1] == pub and ent[0]() is by:
            return pub
        from vcompute.core.signing import built_public

        built = built_public(by)
        if built is not None and built == pub:
            # Possession by construction: this process built ``by`` from the secret seed of
            # ``built`` (exactly a SigningKey, still showing that key); no challenge to sign.
            pub = built
        else:
            self.seq += 1
            # The key proven is the one returned: ``public_bytes`` may be a property that shows
            # another key on every read, so a key read before the proof proves nothing.
            pub = prove_holder(by, self.context, self.seq.to_bytes(8, "big"))
        try:
            self._proven[id(by)] = (weakref.ref(by), pub)
        except TypeError:  # not weak-referenceable: prove again next time
            pass
        return pub

    def proven(self, by: Any) -> bytes | None:
        """The key :meth:`holder` would return for ``by`` without a new proof, or None.

        The cheap half of :meth:`holder`, for a backend's per-request path: ``by`` is the
        very object that proved, still a signing key (:func:`public_of`'s checks) showing
        exactly the key it proved. None means: call :meth:`holder` (which proves, or raises).
        """
        ent = self._proven.get(id(by))
        if ent is None:
            return None
        pub = getattr(by, "public_bytes", None)
        # One read of ``public_bytes``; equal to the proven exact 32 bytes and itself exact bytes.
        if type(pub) is bytes and pub == ent[1] and ent[0]() is by and callable(getattr(by, "sign", None)):
            return ent[1]
        return None


ClockFn = Callable[[], float]
