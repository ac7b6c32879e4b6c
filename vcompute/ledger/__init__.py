"""Pluggable ledgers: accounts, escrow, stakes, slashing and commitments behind one interface.

Open a ledger by URL with :func:`open`:

============================  ==========================================================
``memory://``                 in-process (default); fastest; for simulations
``sqlite:///path.db``         durable: WAL, one transaction per operation, a hash-chained
                              event log with every entry signed by the party that asked,
                              over its position and predecessor (check it with
                              :func:`verify_chain` / ``vcompute ledger verify``, against a
                              kept checkpoint to catch a cut-off tail: protocols/SQLiteLedger.md)
``evm://tester``              an embedded Ethereum chain (py-evm) running ``protocols/VLedger.vy``
``evm+http://HOST:PORT``      the same contract on any JSON-RPC node
============================  ==========================================================

Query parameters set options, e.g. ``memory://?withdraw_delay=60`` or
``sqlite:///l.db?synchronous=normal`` (fsync at WAL checkpoints only: survives
a killed process, not a power cut). ``SQLiteLedger.batch()`` applies many
operations in one transaction. Third-party
backends register under the entry-point group ``vcompute.ledgers`` (name = URL
scheme; value = a factory ``f(url, *, minter, clock, **options) -> Ledger``).

**Operations.** Every mutating call takes the acting party's
:class:`~vcompute.core.signing.SigningKey` first and a keyword-only,
client-chosen ``op_id``. Retrying a call with the same key and ``op_id``
and the same arguments applies it at most once (the retry returns the
original :class:`Receipt` with ``replayed=True``); reusing an ``op_id`` for a
different request raises :class:`OperationConflict`; "the same" is by type and
value, so ``True``, ``1`` and ``1.0`` differ
(``tests/ledger/test_conformance.py::test_retry_applies_once_and_conflicting_reuse_is_refused``,
``tests/ledger/test_canonical.py::test_retry_equality_is_exact_by_type``).
Amounts are ints in ``1..MAX_AMOUNT``. Times are ledger seconds (:meth:`Ledger.now`).

- ``open_account(key, name)``: bind ``name`` to ``key`` (one account per key, names unique;
  ``tests/ledger/test_conformance.py::test_account_binding_rules``).
- ``mint(minter_key, to, amount)``: only the ledger's minter (``open(url, minter=...)``,
  default :func:`default_minter`) creates money; ``burn(key, amount)`` destroys one's own
  (``tests/ledger/test_conformance.py::test_only_minter_mints``, ``::test_burn``).
- ``balance(name)``; ``transfer(key, to, amount)``: nobody spends another's balance
  (``tests/ledger/test_conformance.py::test_an_impostor_cannot_spend_anothers_balance``).
- ``escrow_open(consumer_key, escrow_id, provider=, amount=, deadline=, verifier=None)``
  holds the consumer's money; the provider is not the consumer and the verifier is
  neither (``tests/ledger/test_authorisation.py::test_escrow_roles_must_differ``).
  ``escrow_release`` pays the provider (consumer or verifier); ``escrow_refund``
  returns it to the consumer (verifier at any time -- failed verification --,
  consumer or provider once ``now() >= deadline`` -- a party vanished;
  ``tests/ledger/test_conformance.py::test_escrow_refund_rules``). Settling frees stake
  locked against the escrow.
- ``stake_deposit(key, amount)`` (balance to free stake); ``stake_lock(provider_key,
  escrow_id, amount)`` (against an open escrow the key provides for);
  ``stake_slash(verifier_key, escrow_id, amount, to=)`` (the escrow's verifier
  only, from stake locked against it, to a beneficiary/treasury/jackpot
  account other than the provider, before the escrow settles); ``stake_unbond(key, amount)``
  (free stake only: locked stake cannot leave) then ``stake_withdraw(key)`` once
  ``withdraw_delay`` seconds have passed. Stake leaves only that way; if consumer and
  verifier vanish, the provider refunds the escrow after its deadline, which frees its
  stake (``tests/ledger/test_conformance.py::test_stake_lock_slash_and_settle``,
  ``::test_unbond_then_withdraw_after_delay``,
  ``tests/ledger/test_authorisation.py::test_locked_stake_times_out_when_consumer_and_verifier_vanish``).
- ``commit(key, commitment_id, digest32, metadata={})`` posts an immutable
  commitment; ``commitment(id)`` looks it up; metadata is a flat dict of name ->
  None / bool / int / str (``tests/ledger/test_conformance.py::test_commitments``,
  ``tests/ledger/test_canonical.py::test_metadata_round_trips_exactly``).

**Authorisation.** Nothing the rules depend on trusts a caller's object: every
amount, name, id, time, digest, metadata value and public key must be an exact
builtin (``type(x) is int``, not a subclass that lies in ``==`` or arithmetic) and
is refused otherwise with :class:`InvalidRequest` / :class:`InvalidAmount` (both
``ValueError``) naming the argument; the rules are :mod:`vcompute.ledger.canonical`,
applied identically by every backend and checked byte for byte by the EVM contract
(``tests/ledger/test_authorisation.py::test_int_subclass_amounts_create_no_money``,
``::test_str_subclass_cannot_impersonate_the_verifier``,
``::test_bytes_subclass_public_key_cannot_mint``,
``tests/ledger/test_canonical.py::test_contract_accepts_exactly_the_metadata_python_accepts``,
``::test_contract_accepts_exactly_the_names_and_op_ids_python_accepts``). Acting
needs the private key: each key object signs a challenge naming the ledger's
random id and a sequence number (memory, EVM) or signs every request naming the
ledger (SQLite), so a captured signature spends on no other ledger and does not
replay (``tests/ledger/test_authorisation.py::test_a_proof_captured_on_one_ledger_spends_on_no_other``,
``::test_the_minters_public_key_alone_mints_nothing``,
``::test_a_captured_mint_proof_does_not_replay_on_evm``,
``::test_binding_someone_elses_key_directly_on_the_contract_is_never_reported_as_theirs``).
A request acts for the public key just proven and for nothing read from the key
object before or after (``public_bytes`` may be a property that shows the minter's
key on one read and its own on the next:
``tests/ledger/test_authorisation.py::test_a_key_that_changes_its_public_key_between_reads_impersonates_no_one``).

**Errors.** A refused operation raises a :class:`LedgerError` subclass
(:class:`Unauthorized`, :class:`InsufficientFunds`, :class:`UnknownAccount`,
:class:`NotFound`, :class:`InvalidAmount`, :class:`InvalidRequest`,
:class:`EscrowStateError`, :class:`OperationConflict`, :class:`InvalidURL`) and
changes nothing, the same on every backend
(``tests/ledger/test_conformance.py`` runs every case on memory, SQLite and EVM;
``tests/ledger/test_stateful.py::test_evm_random_sequences`` compares the three on
random sequences with hostile inputs).

**Conservation.** ``total_supply()`` changes only by mint and burn, and
``holdings()`` (balances + open escrows + stakes) always equals it;
:func:`check_conservation` asserts this (after every step of
``tests/ledger/test_stateful.py::test_memory_random_sequences``,
``::test_sqlite_random_sequences_with_reopen`` and ``::test_evm_random_sequences``).

Example:
    >>> import vcompute.ledger as vl
    >>> from vcompute.core.signing import key_from_name
    >>> led = vl.open("memory://")   # the same lines run on "sqlite:///x.db" and "evm://"
    >>> alice, bob = key_from_name("alice"), key_from_name("bob")
    >>> _ = led.open_account(alice, "alice", op_id="open-a")
    >>> _ = led.open_account(bob, "bob", op_id="open-b")
    >>> _ = led.mint(vl.default_minter(), "alice", 100, op_id="fund-alice")
    >>> _ = led.escrow_open(alice, "job-1", provider="bob", amount=30, deadline=led.now() + 60, op_id="e1")
    >>> led.escrow_release(alice, "job-1", op_id="r1").replayed
    False
    >>> led.escrow_release(alice, "job-1", op_id="r1").replayed   # a retry is a no-op
    True
    >>> led.balance("alice"), led.balance("bob"), vl.check_conservation(led)
    (70, 30, 100)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vcompute.core.registry import Registry
from vcompute.ledger.base import Ledger, ManualClock
from vcompute.ledger.errors import (
    EscrowStateError,
    InsufficientFunds,
    InvalidAmount,
    InvalidRequest,
    InvalidURL,
    LedgerError,
    NotFound,
    OperationConflict,
    Unauthorized,
    UnknownAccount,
)
from vcompute.ledger.records import MAX_AMOUNT, MAX_SUPPLY, Account, Commitment, Escrow, Receipt, Stake

#: Ledger backends by URL scheme; third-party packages add more through the
#: ``vcompute.ledgers`` entry-point group.
LEDGERS: Registry = Registry("ledger", group="vcompute.ledgers")
LEDGERS.register("memory", "vcompute.ledger.memory:open_memory")
LEDGERS.register("sqlite", "vcompute.ledger.sqlite:open_sqlite")
LEDGERS.register("evm", "vcompute.ledger.evm:open_evm")
LEDGERS.register("evm+http", "vcompute.ledger.evm:open_evm")
LEDGERS.register("evm+https", "vcompute.ledger.evm:open_evm")

_FLOAT_OPTIONS = {"withdraw_delay", "fund_cap"}


def default_minter():
    """The minter key used when :func:`open` is given none (experiments only: not secret).

    Returns:
        ``key_from_name("minter", salt="vcompute-ledger")``.
    """
    from vcompute.core.signing import key_from_name

    return key_from_name("minter", salt="vcompute-ledger")


def open(url: str = "memory://", *, minter: Any = None, clock: Any = None, **options: Any) -> Ledger:  # noqa: A001
    """Open the ledger at ``url``.

    Args:
        url: ``memory://``, ``sqlite:///path.db``, ``evm://tester``,
            ``evm+http://HOST:PORT`` or a scheme registered under ``vcompute.ledgers``.
            Query parameters become options (``?withdraw_delay=60``).
        minter: the key (or its 32-byte public key) allowed to mint; default
            :func:`default_minter`.
        clock: a zero-argument callable giving ledger time (e.g. ``lambda: env.now``
            for SimPy); default a :class:`ManualClock` for ``memory://`` and
            wall time for ``sqlite://``. EVM ledgers use block time.
        **options: backend options (``withdraw_delay`` in seconds, default 0).

    Returns:
        A :class:`Ledger`.

    Raises:
        InvalidURL: for a malformed URL or an unknown scheme (the message lists known ones).

    Example:
        >>> open("memory://?withdraw_delay=5").withdraw_delay
        5.0
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidURL(f"ledger URL must look like 'scheme://...', got {url!r}; "
                         f"known schemes: {', '.join(LEDGERS.names())}")
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise InvalidURL(f"malformed ledger URL {url!r}: {e}") from None
    scheme = parts.scheme
    if scheme not in LEDGERS:
        raise InvalidURL(f"unknown ledger scheme {scheme!r} in {url!r}; known schemes: {', '.join(LEDGERS.names())}")
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in _FLOAT_OPTIONS:
            try:
                v = float(v)
            except ValueError:
                raise InvalidURL(f"option {k}={v!r} in {url!r} must be a number") from None
        options.setdefault(k, v)
    if "withdraw_delay" in options:
        d = options["withdraw_delay"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 2**32:
            raise InvalidURL(f"withdraw_delay must be seconds in 0..2**32, got {d!r}")
    if minter is None:
        minter = default_minter()
    pub = getattr(minter, "public_bytes", minter)
    if not (isinstance(pub, (bytes, bytearray)) and len(pub) == 32):
        raise InvalidRequest("minter must be a SigningKey or its 32-byte public key")
    factory = LEDGERS.get(scheme)
    return factory(url, minter=bytes(pub), clock=clock, **options)


def check_conservation(ledger: Ledger) -> int:
    """Assert that balances + open escrows + stakes equal the total supply.

    Args:
        ledger: any ledger.

    Returns:
        The total supply.

    Raises:
        AssertionError: naming both numbers if money was created or lost.
    """
    supply, held = ledger.total_supply(), ledger.holdings()
    if supply != held:
        raise AssertionError(f"money not conserved on {ledger.url}: supply {supply} != holdings {held}")
    if not 0 <= supply <= MAX_SUPPLY:
        raise AssertionError(f"total supply {supply} out of range on {ledger.url}")
    return supply


def total_supply(ledger: Ledger) -> int:
    """The ledger's total supply (minted minus burned).

    Args:
        ledger: any ledger.

    Returns:
        ``ledger.total_supply()``.
    """
    return ledger.total_supply()


def verify_chain(path: str, anchor: Any = None, **options: Any):
    """Check a SQLite ledger file's signed hash chain and the state it implies (against ``anchor`` if given).

    See :func:`vcompute.ledger.chain.verify_chain`.
    """
    from vcompute.ledger.chain import verify_chain as _verify

    return _verify(path, anchor, **options)


__all__ = [
    "LEDGERS",
    "MAX_AMOUNT",
    "MAX_SUPPLY",
    "Account",
    "Commitment",
    "Escrow",
    "EscrowStateError",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidRequest",
    "InvalidURL",
    "Ledger",
    "LedgerError",
    "ManualClock",
    "NotFound",
    "OperationConflict",
    "Receipt",
    "Stake",
    "Unauthorized",
    "UnknownAccount",
    "check_conservation",
    "default_minter",
    "open",
    "total_supply",
    "verify_chain",
]
