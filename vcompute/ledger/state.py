"""The ledger's rules as one pure state machine, shared by the memory and SQLite backends.

:class:`LedgerState` applies a request ``(kind, actor key, op id, args)`` at
a ledger time. Every handler validates everything first and mutates only
when the operation will succeed, so a refused operation changes nothing.
The EVM backend enforces the same rules in Vyper (``protocols/VLedger.vy``);
the conformance suite in ``tests/ledger`` checks that they agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vcompute.ledger.canonical import (
    check_amount,
    check_digest,
    check_metadata,
    check_name,
    check_op_id,
    check_public_key,
    check_time,
    same_request,
)
from vcompute.ledger.errors import (
    EscrowStateError,
    InsufficientFunds,
    InvalidAmount,
    InvalidRequest,
    NotFound,
    OperationConflict,
    Unauthorized,
    UnknownAccount,
)
from vcompute.ledger.records import (
    MAX_SUPPLY,
    Account,
    Commitment,
    Escrow,
    Receipt,
    Stake,
)

__all__ = ["KINDS", "LedgerState", "normalise_args"]

#: Every operation kind, with the names of its arguments in order.
KINDS: dict[str, tuple[str, ...]] = {
    "open_account": ("name",),
    "mint": ("to", "amount"),
    "burn": ("amount",),
    "transfer": ("to", "amount"),
    "escrow_open": ("escrow_id", "provider", "amount", "deadline", "verifier"),
    "escrow_release": ("escrow_id",),
    "escrow_refund": ("escrow_id",),
    "stake_deposit": ("amount",),
    "stake_lock": ("escrow_id", "amount"),
    "stake_slash": ("escrow_id", "amount", "to"),
    "stake_unbond": ("amount",),
    "stake_withdraw": (),
    "commit": ("commitment_id", "digest", "metadata"),
}


def _verifier(v: object) -> str | None:
    return None if v is None else check_name(v, "verifier")


def _validator(name: str) -> Any:
    if name == "amount":
        return check_amount
    if name in ("name", "to", "provider"):
        what = "account name" if name == "name" else name
        return lambda v: check_name(v, what)
    if name == "verifier":
        return _verifier
    if name in ("escrow_id", "commitment_id"):
        return lambda v: check_name(v, name)
    if name == "deadline":
        return check_time
    if name == "digest":
        return lambda v: check_digest(v).hex()
    if name == "metadata":
        return check_metadata
    raise AssertionError(name)


# Built once: every request of a simulation passes here, and dispatching on the argument's
# name per value cost more than the checks themselves.
_VALIDATORS: dict[str, tuple[Any, ...]] = {k: tuple(_validator(n) for n in names) for k, names in KINDS.items()}


def normalise_args(kind: str, args: tuple) -> tuple:
    """Validate ``args`` for ``kind`` and return their canonical JSON-able form.

    Every value must be an exact builtin (see :mod:`vcompute.ledger.canonical`);
    what comes back is a fresh tuple of builtins the rules can trust.

    Raises:
        InvalidRequest: on any malformed argument (``InvalidAmount`` for amounts).
    """
    if type(kind) is not str or kind not in KINDS:
        raise InvalidRequest(f"unknown operation {kind!r}; known: {', '.join(KINDS)}")
    checks = _VALIDATORS[kind]
    if type(args) is not tuple or len(args) != len(checks):
        raise InvalidRequest(f"{kind} takes {KINDS[kind]}, got {len(args)} arguments")
    return tuple([f(v) for f, v in zip(checks, args)])


_ESCROW_FIELDS = tuple(f.name for f in dataclasses.fields(Escrow))
_STAKE_FIELDS = tuple(f.name for f in dataclasses.fields(Stake))
_new = object.__new__


def _record(cls: type, names: tuple[str, ...], values: Any) -> Any:
    """``cls(*values)`` for a frozen dataclass with every field given, without its ``__init__``'s
    per-field ``object.__setattr__`` (queried once per job of a market run)."""
    r = _new(cls)
    r.__dict__.update(zip(names, values))
    return r


class LedgerState:
    """All ledger state and the rules that change it.

    Args:
        minter: the public key allowed to mint.
        withdraw_delay: seconds between unbonding stake and withdrawing it.
    """

    def __init__(self, minter: bytes, withdraw_delay: float = 0.0) -> None:
        self.minter = bytes(minter)
        self.withdraw_delay = float(withdraw_delay)
        self.pub_of: dict[str, bytes] = {}
        self.name_of: dict[bytes, str] = {}
        self.bal: dict[str, int] = {}
        self.esc: dict[str, list] = {}   # id -> [consumer, provider, verifier, amount, deadline, state, locked]
        self.stk: dict[str, list] = {}   # name -> [free, locked, unbonding, ready_at]
        self.com: dict[str, tuple] = {}  # id -> (owner, digest hex, metadata, time)
        self.supply = 0
        # Applied requests, for retries: per signing key, op id -> (kind, log position, *args). One
        # dict per key and one flat tuple per request (no (key, op id) tuple, no separate args
        # tuple): a market run keeps millions, each a container the cycle collector scans.
        self.ops: dict[bytes, dict[str, tuple]] = {}
        self.seq = 0
        self.touched: set[tuple[str, str]] = set()
        # Bound once (a subclass's overrides included): looked up on every request.
        self._handlers = {k: getattr(self, "_" + k) for k in KINDS}

    # -- applying requests -------------------------------------------------

    def lookup(self, pub: bytes, op_id: str, kind: str, args: tuple) -> Receipt | None:
        """The receipt of an already applied identical request, or None.

        Raises:
            OperationConflict: if ``op_id`` was used by ``pub`` for a different request.
        """
        prev = self.recorded(pub, op_id)
        if prev is None:
            return None
        if prev[0] != kind or not same_request(prev[1], args):
            raise OperationConflict(
                f"op_id {op_id!r} was already used by this key for {prev[0]}{prev[1]}; "
                f"choose a fresh op_id for a new operation (reuse one only to retry the same request)")
        return Receipt(op_id, kind, prev[2], replayed=True)

    def recorded(self, pub: bytes, op_id: str) -> tuple[str, tuple, int] | None:
        """``(kind, args, log position)`` of the request ``pub`` applied as ``op_id``, or None."""
        mine = self.ops.get(pub)
        rec = None if mine is None else mine.get(op_id)
        return None if rec is None else (rec[0], rec[2:], rec[1])

    def apply(self, kind: str, pub: bytes, op_id: str, args: tuple, now: float) -> Receipt:
        """Apply a normalised request signed by ``pub`` at ledger time ``now``.

        Returns the original receipt (``replayed=True``) for a retry.

        Raises:
            LedgerError: the request is refused; nothing changed.
        """
        check_op_id(op_id)
        check_public_key(pub, "the signer's public key")
        return self.apply_valid(kind, pub, op_id, args, now)

    def apply_valid(self, kind: str, pub: bytes, op_id: str, args: tuple, now: float) -> Receipt:
        """:meth:`apply` for a caller that has itself validated ``op_id`` (:func:`check_op_id`)
        and ``pub`` (exact 32 bytes): the memory backend, whose key proofs return only such keys.

        Raises:
            LedgerError: the request is refused; nothing changed.
        """
        done = self.lookup(pub, op_id, kind, args)
        if done is not None:
            return done
        return Receipt(op_id, kind, self.apply_new(kind, pub, op_id, args, now))

    def apply_new(self, kind: str, pub: bytes, op_id: str, args: tuple, now: float) -> int:
        """:meth:`apply_valid` for a request whose ``(pub, op_id)`` is not in :attr:`ops` (no retry to
        look up: the caller has checked); returns its log position instead of a receipt.

        Raises:
            LedgerError: the request is refused; nothing changed.
        """
        if kind == "open_account":
            actor = None
        elif kind == "mint":
            if pub != self.minter:
                raise Unauthorized("only the ledger's minter key may mint; open the ledger with minter=... "
                                   "or sign with the default minter (vcompute.ledger.default_minter())")
            actor = None
        else:
            actor = self.name_of.get(pub)
            if actor is None:
                raise UnknownAccount(f"the signing key {pub.hex()[:16]}... is bound to no account; "
                                     "call open_account(key, name) first")
        self._handlers[kind](actor, pub, now, *args)
        seq = self.seq
        mine = self.ops.get(pub)
        if mine is None:
            mine = self.ops[pub] = {}
        mine[op_id] = (kind, seq, *args)
        self.seq = seq + 1
        return seq

    # -- helpers -----------------------------------------------------------

    def _need(self, name: str) -> None:
        if name not in self.pub_of:
            raise UnknownAccount(f"unknown account {name!r}; open it with open_account first")

    def _escrow(self, escrow_id: str) -> list:
        e = self.esc.get(escrow_id)
        if e is None:
            raise NotFound(f"unknown escrow {escrow_id!r}")
        return e

    def _stake(self, name: str) -> list:
        s = self.stk.get(name)
        if s is None:
            s = self.stk[name] = [0, 0, 0, 0.0]
        return s

    def _funds(self, name: str, amount: int, what: str = "balance") -> None:
        have = self.bal.get(name, 0)
        if have < amount:
            raise InsufficientFunds(f"{name!r} has {what} {have}, needs {amount}")

    # -- handlers (validate, then mutate) ----------------------------------

    def _open_account(self, _actor, pub, now, name):
        if name in self.pub_of:
            raise EscrowStateError(f"account {name!r} already exists; choose another name")
        if pub in self.name_of:
            raise EscrowStateError(f"this key is already bound to account {self.name_of[pub]!r}; "
                                   "use one key per account")
        self.pub_of[name] = pub
        self.name_of[pub] = name
        self.bal[name] = 0
        self.touched.add(("acct", name))

    def _mint(self, _actor, _pub, now, to, amount):
        self._need(to)
        if self.supply + amount > MAX_SUPPLY:
            raise InvalidAmount(f"minting {amount} would push total supply past {MAX_SUPPLY}")
        self.bal[to] += amount
        self.supply += amount
        self.touched.add(("acct", to))
        self.touched.add(("meta", "supply"))

    def _burn(self, actor, _pub, now, amount):
        self._funds(actor, amount)
        self.bal[actor] -= amount
        self.supply -= amount
        self.touched.add(("acct", actor))
        self.touched.add(("meta", "supply"))

    def _transfer(self, actor, _pub, now, to, amount):
        if to not in self.pub_of:
            raise UnknownAccount(f"unknown account {to!r}; open it with open_account first")
        bal = self.bal
        have = bal[actor]
        if have < amount:
            raise InsufficientFunds(f"{actor!r} has balance {have}, needs {amount}")
        bal[actor] = have - amount
        bal[to] += amount
        t = self.touched
        t.add(("acct", actor))
        t.add(("acct", to))

    def _escrow_open(self, actor, _pub, now, escrow_id, provider, amount, deadline, verifier):
        if escrow_id in self.esc:
            raise EscrowStateError(f"escrow {escrow_id!r} already exists; escrow ids are never reused")
        pub_of = self.pub_of
        if provider not in pub_of or (verifier is not None and verifier not in pub_of):
            self._need(provider)  # (the helpers raise; inline tests first: once per job of a run)
            self._need(verifier)
        # Distinct roles: a party that is consumer and provider, or verifier of its own
        # work, could slash its own locked stake back to itself and skip withdraw_delay.
        if provider == actor:
            raise InvalidRequest(f"escrow {escrow_id!r}: the provider must not be the consumer ({actor!r})")
        if verifier is not None and verifier in (actor, provider):
            raise InvalidRequest(f"escrow {escrow_id!r}: the verifier must be a third party, "
                                 f"neither the consumer nor the provider ({verifier!r})")
        if deadline <= now:
            raise InvalidRequest(f"deadline {deadline} is not after the ledger time {now}")
        if self.bal.get(actor, 0) < amount:
            self._funds(actor, amount)
        self.bal[actor] -= amount
        self.esc[escrow_id] = [actor, provider, verifier, amount, deadline, "open", 0]
        self.touched.update((("acct", actor), ("esc", escrow_id)))

    def _settle(self, actor, escrow_id, release: bool, now: float):
        e = self.esc.get(escrow_id)
        if e is None:
            self._escrow(escrow_id)
        consumer, provider, verifier, amount, deadline, state, locked = e
        if state != "open":
            raise EscrowStateError(f"escrow {escrow_id!r} is already {state}")
        if release:
            if actor != consumer and actor != verifier:
                raise Unauthorized(f"only the consumer or the designated verifier may release escrow {escrow_id!r}")
        else:
            # After the deadline the provider may refund too (the timeout path): if consumer
            # and verifier vanished, that is how its locked stake comes free.
            if actor != verifier and not (actor in (consumer, provider) and now >= deadline):
                raise Unauthorized(f"escrow {escrow_id!r} may be refunded by its verifier, or by its consumer "
                                   f"or provider once the deadline {deadline} has passed (now {now})")
        self.bal[provider if release else consumer] += amount
        e[5] = "released" if release else "refunded"
        if locked:
            s = self.stk.get(provider)
            if s is None:
                s = self._stake(provider)
            s[0] += locked
            s[1] -= locked
            e[6] = 0
            self.touched.add(("stk", provider))
        self.touched.update((("acct", provider if release else consumer), ("esc", escrow_id)))

    def _escrow_release(self, actor, _pub, now, escrow_id):
        self._settle(actor, escrow_id, True, now)

    def _escrow_refund(self, actor, _pub, now, escrow_id):
        self._settle(actor, escrow_id, False, now)

    def _stake_deposit(self, actor, _pub, now, amount):
        self._funds(actor, amount)
        self.bal[actor] -= amount
        self._stake(actor)[0] += amount
        self.touched.update((("acct", actor), ("stk", actor)))

    def _stake_lock(self, actor, _pub, now, escrow_id, amount):
        e = self.esc.get(escrow_id)
        if e is None:
            self._escrow(escrow_id)
        if e[1] != actor:
            raise Unauthorized(f"only escrow {escrow_id!r}'s provider may lock stake against it")
        if e[5] != "open":
            raise EscrowStateError(f"escrow {escrow_id!r} is {e[5]}; stake can only be locked against an open escrow")
        s = self.stk.get(actor)
        if s is None or s[0] < amount:
            raise InsufficientFunds(f"{actor!r} has free stake {s[0] if s else 0}, needs {amount}; "
                                    "deposit stake first")
        s[0] -= amount
        s[1] += amount
        e[6] += amount
        self.touched.update((("stk", actor), ("esc", escrow_id)))

    def _stake_slash(self, actor, _pub, now, escrow_id, amount, to):
        e = self._escrow(escrow_id)
        if e[2] is None or actor != e[2]:
            raise Unauthorized(f"only escrow {escrow_id!r}'s designated verifier may slash its provider")
        self._need(to)
        if to == e[1]:
            raise InvalidRequest(f"slashed stake cannot go to escrow {escrow_id!r}'s provider {to!r}: "
                                 "stake leaves only through unbond + withdraw_delay")
        if e[5] != "open":
            raise EscrowStateError(f"escrow {escrow_id!r} is {e[5]}; slash before releasing or refunding")
        if e[6] < amount:
            raise InsufficientFunds(f"only {e[6]} stake is locked against escrow {escrow_id!r}, cannot slash {amount}")
        s = self.stk[e[1]]
        s[1] -= amount
        e[6] -= amount
        self.bal[to] += amount
        self.touched.update((("stk", e[1]), ("esc", escrow_id), ("acct", to)))

    def _stake_unbond(self, actor, _pub, now, amount):
        s = self.stk.get(actor)
        if s is None or s[0] < amount:
            raise InsufficientFunds(f"{actor!r} has free (unlocked) stake {s[0] if s else 0}, "
                                    f"cannot unbond {amount}; locked stake frees when its escrow settles")
        s[0] -= amount
        s[2] += amount
        s[3] = now + self.withdraw_delay
        self.touched.add(("stk", actor))

    def _stake_withdraw(self, actor, _pub, now):
        s = self.stk.get(actor)
        if s is None or s[2] == 0:
            raise EscrowStateError(f"{actor!r} has no unbonding stake; call stake_unbond first")
        if now < s[3]:
            raise EscrowStateError(f"{actor!r}'s unbonding stake is withdrawable at {s[3]} (now {now}); wait")
        self.bal[actor] += s[2]
        s[2] = 0
        self.touched.update((("acct", actor), ("stk", actor)))

    def _commit(self, actor, _pub, now, commitment_id, digest, metadata):
        if commitment_id in self.com:
            raise EscrowStateError(f"commitment {commitment_id!r} already exists; commitments are immutable")
        self.com[commitment_id] = (actor, digest, metadata, now)
        self.touched.add(("com", commitment_id))

    # -- queries -----------------------------------------------------------

    def account(self, name: str) -> Account:
        """The account called ``name``.

        Raises:
            UnknownAccount: if there is none.
        """
        self._need(name)
        return Account(name, self.pub_of[name])

    def balance(self, name: str) -> int:
        """Spendable balance of ``name``.

        Raises:
            UnknownAccount: if there is none.
        """
        self._need(name)
        return self.bal[name]

    def escrow(self, escrow_id: str) -> Escrow:
        """The escrow ``escrow_id``.

        Raises:
            NotFound: if there is none.
        """
        e = self._escrow(escrow_id)
        return _record(Escrow, _ESCROW_FIELDS, (escrow_id, *e))

    def stake(self, name: str) -> Stake:
        """The stake of ``name``.

        Raises:
            UnknownAccount: if there is none.
        """
        self._need(name)
        s = self.stk.get(name, [0, 0, 0, 0.0])
        return _record(Stake, _STAKE_FIELDS, s)

    def commitment(self, commitment_id: str) -> Commitment:
        """The commitment ``commitment_id``.

        Raises:
            NotFound: if there is none.
        """
        c = self.com.get(commitment_id)
        if c is None:
            raise NotFound(f"unknown commitment {commitment_id!r}")
        return Commitment(commitment_id, c[0], bytes.fromhex(c[1]), dict(c[2]), c[3])

    def holdings(self) -> int:
        """Balances + open escrows + all stake: equals the supply when money is conserved."""
        held = 0
        for e in self.esc.values():  # (a plain loop: a third faster than a generator, at 10^6 escrows)
            if e[5] == "open":
                held += e[3]
        return sum(self.bal.values()) + held + sum(s[0] + s[1] + s[2] for s in self.stk.values())

    # -- serialised rows (SQLite persistence and chain verification) -------

    def row(self, table: str, key: str) -> Any:
        """The JSON-able value of one state row, or None if absent."""
        if table == "acct":
            return None if key not in self.pub_of else [self.pub_of[key].hex(), self.bal[key]]
        if table == "esc":
            return self.esc.get(key)
        if table == "stk":
            return self.stk.get(key)
        if table == "com":
            c = self.com.get(key)
            return None if c is None else list(c)
        if table == "meta":
            return self.supply
        raise KeyError(table)

    def rows(self) -> dict[str, Any]:
        """Every state row as ``{"table/key": value}``."""
        out: dict[str, Any] = {"meta/supply": self.supply}
        for t, d in (("acct", self.pub_of), ("esc", self.esc), ("stk", self.stk), ("com", self.com)):
            for k in d:
                out[f"{t}/{k}"] = self.row(t, k)
        return out

