"""``evm://tester`` and ``evm+http://HOST:PORT``: the ledger as our Vyper contract on an Ethereum chain.

``evm://tester`` runs an embedded chain (eth-tester on py-evm); ``evm+http://``
(or ``evm+https://``) talks to any JSON-RPC node, e.g. anvil or hardhat. The
rules live in ``protocols/VLedger.vy`` and mirror ``state.py`` check for
check; the conformance suite runs both side by side.

How keys map to the chain: each vcompute key derives a secp256k1 account
(``key.derive_secret("evm")``) that signs its transactions, so the contract
authorises by ``msg.sender``. Binding a name to an Ed25519 public key needs
proof of owning it: ``open_account`` carries the key's signature over
:func:`binding_message` (this chain, this contract, the sender's address and the
name), which this client verifies before sending and again whenever it reads
the binding (:meth:`EVMLedger.account` refuses a binding without a valid proof,
so one made by calling the contract directly with someone else's key is never
reported as theirs). Gas for that address comes from the node's first
account (dev nodes), only what its own transactions need, with a cap on all
such funding (:mod:`vcompute.ledger.gas_station`). Minting is done by the deploying account,
and this client sends a mint from it only after the caller has signed a fresh
challenge naming this chain, this contract and a sequence number with the
ledger's minter key (:func:`~vcompute.ledger.base.prove_holder`): the minter's
public key alone mints nothing. Names are ``keccak256(name)`` on chain; the
contract checks names, op ids and metadata against the canonical rules of
:mod:`vcompute.ledger.canonical` itself (``tests/ledger/test_authorisation.py``,
``tests/ledger/test_canonical.py``).

A refused operation reverts on chain (changing no ledger state) and is
replayed as an ``eth_call`` on the block it was mined in to read its reason,
which maps to the matching :class:`LedgerError`; a retry is recognised by the
contract (it emits no ``Applied`` event) and returns the original receipt.
Ledger time is block time (whole seconds; deadlines are rounded up).

Options: ``withdraw_delay`` (seconds), ``address`` (attach to an already
deployed ledger instead of deploying one; ``evm+http`` only), ``fund_cap``
(ether the client may spend on its senders' gas, default 10; 0: each sender
brings its own).
"""

from __future__ import annotations

import math
import os
from typing import Any
from urllib.parse import urlsplit

from vcompute.ledger.base import KeyProofs, Ledger, public_of
from vcompute.ledger.canonical import check_op_id, decode_metadata, encode_metadata
from vcompute.ledger.contracts import load_contract
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
from vcompute.ledger.records import Account, Commitment, Escrow, Receipt, Stake, check_name
from vcompute.ledger.evm_chain import GAS, TesterChain
from vcompute.ledger.state import normalise_args

__all__ = ["EVMLedger", "binding_message", "open_evm", "revert_error"]

_ERRORS = {"unknown": UnknownAccount, "notfound": NotFound, "unauthorized": Unauthorized,
           "funds": InsufficientFunds, "state": EscrowStateError, "invalid": InvalidRequest,
           "amount": InvalidAmount, "conflict": OperationConflict}
_STATES = {1: "open", 2: "released", 3: "refunded"}
_GAS = GAS
#: Default ``fund_cap``: ether the client may pay its senders for gas (about 200 senders on a fresh anvil).
FUND_CAP_ETH = 10.0


def revert_error(message: str) -> LedgerError:
    """Map a revert message (``"execution reverted: funds: ..."``) to its :class:`LedgerError`.

    Args:
        message: the node's error text.

    Returns:
        The matching error (``LedgerError`` when the reason has no known category).
    """
    reason = message.split("execution reverted:", 1)[-1].strip().strip("'\"")
    cat = reason.split(":", 1)[0].strip()
    return _ERRORS.get(cat, LedgerError)(f"refused by the contract: {reason}")


def binding_message(chain_id: int, contract: str, sender: str, name: str, public_key: bytes) -> bytes:
    """What a key signs to bind ``public_key`` to account ``name`` held by EVM address ``sender``.

    Args:
        chain_id: the chain's id.
        contract: the VLedger address (hex).
        sender: the account's EVM address (hex).
        name: the account name.
        public_key: the 32-byte Ed25519 public key.

    Returns:
        The bytes to sign.
    """
    return b"".join([b"vcompute-evm-binding\x00", chain_id.to_bytes(32, "big"), bytes.fromhex(contract[2:].lower()),
                     bytes.fromhex(sender[2:].lower()), public_key, name.encode()])


def _keccak(data: bytes) -> bytes:
    from vcompute.ledger.abi import keccak256

    return keccak256(data)


_NAME_IDS: dict[str, bytes] = {}


def _name_id(name: str | None) -> bytes:
    if name is None:
        return b"\x00" * 32
    if type(name) is not str:  # only exact strings are cached (a subclass could lie in __hash__/__eq__)
        return _keccak(str.encode(name))
    nid = _NAME_IDS.get(name)
    if nid is None:
        if len(_NAME_IDS) > 1 << 16:
            _NAME_IDS.clear()
        nid = _NAME_IDS[name] = _keccak(name.encode())
    return nid


class EVMLedger(Ledger):
    """The :class:`Ledger` interface over the ``VLedger`` contract.

    Args:
        url: ``evm://tester`` or ``evm+http://HOST:PORT``.
        minter: public key whose requests may mint (sent from the deploying account).
        withdraw_delay: seconds (rounded up) between unbonding and withdrawing; used when deploying.
        address: an already deployed VLedger to attach to (``evm+http`` only).
        fund_cap: ether this client may spend on its senders' gas from the node's account
            (see :class:`~vcompute.ledger.gas_station.GasStation`; 0: senders bring their own).

    Raises:
        InvalidURL: for an unreachable node or an unsupported URL.
    """

    def __init__(self, url: str, *, minter: bytes, withdraw_delay: float = 0.0, address: str | None = None,
                 fund_cap: float = FUND_CAP_ETH) -> None:
        from eth_abi import decode, encode
        from eth_utils import to_checksum_address
        from web3 import Web3

        self._encode_args, self._decode = encode, decode
        self._selectors: dict[str, tuple[bytes, list[str]]] = {}
        self.url = url
        self.minter_public = bytes(minter)
        parts = urlsplit(url)
        if parts.scheme == "evm":
            if parts.netloc not in ("", "revm", "tester") or parts.path not in ("", "/"):
                raise InvalidURL(f"the embedded chains are 'evm://' (revm) and 'evm://tester' (py-evm), "
                                 f"got {url!r}; use evm+http://HOST:PORT for a node")
            if parts.netloc == "tester":
                self.chain = TesterChain()
            else:
                from vcompute.ledger.revm_chain import RevmChain

                self.chain = RevmChain()
        else:
            if not parts.hostname:
                raise InvalidURL(f"{url!r} names no host; use e.g. evm+http://127.0.0.1:8545")
            endpoint = f"{parts.scheme.split('+', 1)[1]}://{parts.netloc}{parts.path}"
            from vcompute.ledger.rpc_chain import NodeChain

            self.chain = NodeChain(endpoint)
        from vcompute.ledger.gas_station import GasStation

        try:
            self.gas = GasStation(self.chain, gas_limit=_GAS, fund_cap=fund_cap)
        except ValueError as e:
            raise InvalidURL(f"{url!r}: {e}") from None
        build = load_contract("VLedger")
        self._abi = build["abi"]
        self._w3 = Web3()  # offline: ABI encoding only
        factory = self._w3.eth.contract(abi=self._abi, bytecode=build["bytecode"])
        if address is None:
            delay = math.ceil(float(withdraw_delay))
            data = factory.constructor(delay).data_in_transaction
            rc = self.chain.send_from_node({"data": data})
            if not rc.get("status", 1) or not rc.get("contract_address", rc.get("contractAddress")):
                raise LedgerError(f"deploying VLedger failed on {url}")
            address = rc.get("contract_address") or rc.get("contractAddress")
        self.address = to_checksum_address(address)
        self._c = self._w3.eth.contract(address=self.address, abi=self._abi)
        self._outputs = {f["name"]: [self._abi_type(o) for o in f.get("outputs", [])]
                         for f in self._abi if f.get("type") == "function"}
        self._cache = None
        self.withdraw_delay = float(self._view("withdraw_delay")[0])
        self._accounts: dict[bytes, Any] = {}
        self._nonces: dict[str, int] = {}
        self._keys = KeyProofs(b"evm:%d:%s:%s" % (self.chain.chain_id, self.address.encode(),
                                                    os.urandom(16).hex().encode()))
        # The embedded chain has no other writer, so views can be cached until our next write.
        self._cache: dict | None = {} if parts.scheme == "evm" else None
        self._snap = self.chain.snapshot()
        self._funded_at: list[tuple[Any, int]] = [(self._snap, 0)]  # (snapshot, gas paid out when taken)

    # -- plumbing ----------------------------------------------------------

    @staticmethod
    def _abi_type(o: dict) -> str:
        t = o["type"]
        if t.startswith("tuple"):
            return "(" + ",".join(EVMLedger._abi_type(c) for c in o["components"]) + ")" + t[5:]
        return t

    def _view(self, fn: str, *args: Any) -> tuple:
        key = (fn, args)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        data = self._encode(fn, list(args))
        out = self._decode(self._outputs[fn], self.chain.call(self.chain.deployer, self.address, data))
        if self._cache is not None:
            self._cache[key] = out
        return out

    def _account_of(self, by: Any):
        # Keyed by the derived secret, never by the public key: whoever only knows a
        # public key must not get that account's signer from this cache.
        public_of(by)
        if not callable(getattr(by, "derive_secret", None)):
            raise InvalidRequest("`by` must be a vcompute.core.signing.SigningKey (EVM accounts are derived from it)")
        secret = by.derive_secret("evm")
        if type(secret) is not bytes or len(secret) != 32:  # a subclass could lie in hash and ==
            raise InvalidRequest("`by.derive_secret` must return 32 builtin bytes; pass a SigningKey")
        acct = self._accounts.get(secret)
        if acct is None:
            from eth_account import Account as EthAccount

            acct = self._accounts[secret] = EthAccount.from_key(secret)
        return acct

    def _invalidate(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    def checkpoint(self) -> Any:
        """Snapshot the chain (test chains only); see :meth:`rollback`."""
        snap = self.chain.snapshot()
        self._funded_at.append((snap, self.gas.funded))
        return snap

    def _reverted(self, snap: Any) -> None:
        self._nonces.clear()
        self.__dict__.pop("_op_seqs", None)  # log positions are reused after a revert (op_counts)
        self._invalidate()
        funded = next((f for s, f in reversed(self._funded_at) if s is snap), None)
        self.gas.forget(funded)

    def rollback(self, snap: Any) -> None:
        """Revert the chain to a :meth:`checkpoint` (test chains only)."""
        self.chain.revert(snap)
        self._reverted(snap)

    def reset(self) -> None:
        """Revert the chain to just after deployment (test chains only): a fresh, empty ledger."""
        self.chain.revert(self._snap)
        self._reverted(self._snap)
        self._snap = self.chain.snapshot()
        self._funded_at = [(self._snap, 0)]

    def now(self) -> float:
        """Block time of the next block, in seconds."""
        return float(self.chain.now())

    def advance(self, seconds: float) -> None:
        """Move block time forward by ``seconds`` (rounded up; test chains only)."""
        if not seconds >= 0:
            raise ValueError(f"time only moves forward; got {seconds}")
        if seconds > 0:
            self._invalidate()
            self.chain.advance(seconds)

    def _submit(self, kind: str, by: Any, op_id: str, args: tuple) -> Receipt:
        public_of(by)
        args = normalise_args(kind, args)
        check_op_id(op_id)
        # Every key object proves once that it holds its public key's secret, as on the
        # other backends: the node account mints only for whoever holds the minter's. The
        # key acted for is the one proven (``public_bytes`` may change between two reads).
        pub = self._keys.holder(by)
        from_node = kind == "mint" and pub == self.minter_public
        sender = self.chain.deployer if from_node else self._account_of(by).address
        proof = b""
        if kind == "open_account":
            msg = binding_message(self.chain.chain_id, self.address, sender, args[0], pub)
            proof = by.sign(msg)
            from vcompute.core.signing import verify

            if type(proof) is not bytes or not verify(pub, msg, proof):
                raise Unauthorized("the signing key does not hold the secret of the public key it claims; "
                                   "pass the SigningKey itself as `by`")
        fn, cargs = self._contract_args(kind, pub, args, proof)
        cargs.append(op_id)
        self._invalidate()
        data = self._encode(fn, cargs)
        if not from_node and getattr(self.chain, "transact", None) is None:  # revm charges no gas
            self.gas.ready(sender, opening=kind == "open_account")
        try:
            if from_node:
                rc = self.chain.send_from_node({"to": self.address, "data": data})
            else:
                rc = self._send_signed(by, sender, data)
        except Exception as e:
            reason = self.chain.revert_reason(e)
            if reason is not None:  # nodes that check transactions before mining them
                raise revert_error(reason) from None
            if not from_node and getattr(self.chain, "transact", None) is None:
                self.gas.refused(sender, opening=kind == "open_account")
            # In process (revm) the contract itself refuses unknown accounts: anything else is transient.
            if getattr(self.chain, "transact", None) is not None or self.chain.balance(sender) > 0:
                raise LedgerError(f"{kind} {op_id!r} could not be sent: {e}; retry it with the same op_id") from e
            # an unfunded sender is no account (opening one funds it): the node refuses its gas
            if kind == "mint":
                raise Unauthorized("only the ledger's minter key may mint") from None
            raise UnknownAccount(f"the signing key is bound to no account ({e}); call open_account first") from None
        if not rc.get("status", 1):
            # A reverted transaction changed no contract storage, so replaying it as a
            # call on the block it was mined in (same state, same block time) gives its reason.
            try:
                self.chain.call(sender, self.address, data, "latest")
            except Exception as e:
                reason = self.chain.revert_reason(e)
                if reason is not None:
                    raise revert_error(reason) from None
                raise LedgerError(f"{kind} {op_id!r} reverted on chain: {e}") from None
            raise LedgerError(f"{kind} {op_id!r} reverted on chain without a reason; retry it with the same op_id")
        txh = rc.get("transaction_hash") or rc.get("transactionHash")
        txh = txh.hex() if isinstance(txh, (bytes, bytearray)) else str(txh)
        for log in rc.get("logs", []):
            topics = log.get("topics", [])
            if topics and str(log.get("address", "")).lower() == self.address.lower():
                raw = log["data"]
                raw = bytes.fromhex(raw[2:]) if isinstance(raw, str) else bytes(raw)
                from vcompute.ledger.abi import decode_string_uint

                _kind, seq = decode_string_uint(raw)
                return Receipt(op_id, kind, int(seq), ref=txh)
        key = _keccak(self._encode_args(["address", "string"], [sender, op_id]))
        (seq1,) = self._view("op_seq", key)
        return Receipt(op_id, kind, int(seq1) - 1, replayed=True, ref=txh)

    def _encode(self, fn: str, args: list) -> bytes:
        """Calldata of ``fn(*args)``: its selector and ABI-encoded arguments (cached per function)."""
        entry = self._selectors.get(fn)
        if entry is None:
            spec = next(f for f in self._abi if f.get("type") == "function" and f["name"] == fn)
            types = [self._abi_type(i) for i in spec["inputs"]]
            entry = self._selectors[fn] = (_keccak(f"{fn}({','.join(types)})".encode())[:4], types)
        from vcompute.ledger.abi import encode

        return entry[0] + encode(entry[1], args)

    def _send_signed(self, by: Any, sender: str, data: bytes) -> dict:
        transact = getattr(self.chain, "transact", None)
        if transact is not None:
            # An in-process chain (revm): the account derived from `by`'s private key acts directly;
            # a signature would prove nothing to a chain living in this process.
            self._account_of(by)
            return transact(sender, self.address, data)
        acct = self._account_of(by)
        nonce = self._nonces.get(sender)
        if nonce is None:
            nonce = self.chain.nonce(sender)
        from vcompute.ledger.tx import sign_1559

        if isinstance(data, str):  # hex calldata, as eth_account took it
            data = bytes.fromhex(data[2:] if data[:2] in ("0x", "0X") else data)
        raw = sign_1559(acct.key, chain_id=self.chain.chain_id, nonce=nonce, max_priority_fee=self.gas.tip,
                        max_fee=self.gas.max_fee, gas=_GAS, to=self.address, value=0, data=data)
        try:
            rc = self.chain.send_raw(raw)
        except Exception:
            self._nonces.pop(sender, None)
            if self.chain.mined(_keccak(raw)):  # the receipt was lost, not the transaction
                self.gas.signed(sender, nonce)
            raise
        self._nonces[sender] = nonce + 1
        self.gas.signed(sender, nonce)
        self.gas.charged(sender, rc)
        return rc

    def _contract_args(self, kind: str, pub: bytes, a: tuple, proof: bytes) -> tuple[str, list]:
        if kind == "open_account":
            return kind, [a[0], pub, proof]
        if kind in ("mint", "transfer"):
            return kind, [_name_id(a[0]), a[1]]
        if kind == "escrow_open":
            eid, provider, amount, deadline, verifier = a
            return kind, [eid, _name_id(provider), amount, math.ceil(deadline), _name_id(verifier)]
        if kind in ("escrow_release", "escrow_refund"):
            return kind, [_name_id(a[0])]
        if kind == "stake_lock":
            return kind, [_name_id(a[0]), a[1]]
        if kind == "stake_slash":
            return kind, [_name_id(a[0]), a[1], _name_id(a[2])]
        if kind == "commit":
            return kind, [a[0], bytes.fromhex(a[1]), encode_metadata(a[2])]
        return kind, list(a)  # burn, stake_deposit, stake_unbond: (amount,); stake_withdraw: ()

    # -- queries -----------------------------------------------------------

    def _info(self, name: str) -> tuple:
        check_name(name)
        addr, pubkey, bal, stake = self._view("account_info", _name_id(name))
        if int(addr, 16) == 0:
            raise UnknownAccount(f"unknown account {name!r}; open it with open_account first")
        return pubkey, bal, stake

    def account(self, name: str) -> Account:
        """The account ``name``, once its stored binding proof verifies.

        Raises:
            UnknownAccount: if there is none.
            Unauthorized: if the account was bound (by calling the contract directly)
                to a public key whose holder never signed the binding.
        """
        from vcompute.core.signing import verify

        pubkey = bytes(self._info(name)[0])
        addr = self._view("addr_of", _name_id(name))[0]
        (proof,) = self._view("proof_of", _name_id(name))
        if not verify(pubkey, binding_message(self.chain.chain_id, self.address, addr, name, pubkey), bytes(proof)):
            raise Unauthorized(f"account {name!r} is bound to public key {pubkey.hex()[:16]}... without that key's "
                               "signature over the binding; do not treat it as that key's account")
        return Account(name, pubkey)

    def accounts(self) -> list[str]:
        """Names of all accounts, sorted."""
        (n,) = self._view("account_count")
        out: list[str] = []
        while len(out) < n:
            out += list(self._view("account_names", len(out))[0])
        return sorted(out)

    def balance(self, name: str) -> int:
        """Spendable balance of ``name``."""
        return int(self._info(name)[1])

    def escrow(self, escrow_id: str) -> Escrow:
        """The escrow ``escrow_id``."""
        check_name(escrow_id, "escrow_id")
        consumer, provider, verifier, amount, deadline, state, locked = self._view("escrow_info",
                                                                                   _name_id(escrow_id))
        if state == 0:
            raise NotFound(f"unknown escrow {escrow_id!r}")
        return Escrow(escrow_id, consumer, provider, verifier or None, int(amount), float(deadline),
                      _STATES[state], int(locked))

    def stake(self, name: str) -> Stake:
        """The stake of ``name``."""
        free, locked, unbonding, ready_at = self._info(name)[2]
        return Stake(int(free), int(locked), int(unbonding), float(ready_at))

    def commitment(self, commitment_id: str) -> Commitment:
        """The commitment ``commitment_id``."""
        check_name(commitment_id, "commitment_id")
        owner, digest, metadata, t = self._view("commitments", _name_id(commitment_id))[0] \
            if len(self._outputs["commitments"]) == 1 else self._view("commitments", _name_id(commitment_id))
        if owner == b"\x00" * 32:
            raise NotFound(f"unknown commitment {commitment_id!r}")
        (name,) = self._view("name_of", owner)
        return Commitment(commitment_id, name, bytes(digest), decode_metadata(metadata), float(t))

    def total_supply(self) -> int:
        """Minted minus burned (the contract's counter)."""
        return int(self._view("supply")[0])

    def holdings(self) -> int:
        """Balances + open escrows + stakes, from the contract's running totals (O(1))."""
        return int(self._view("holdings")[0])


def open_evm(url: str, *, minter: bytes, clock: Any = None, withdraw_delay: float = 0.0,
             address: str | None = None, fund_cap: float = FUND_CAP_ETH, **unknown: Any) -> EVMLedger:
    """Factory for ``evm://tester`` and ``evm+http(s)://HOST:PORT`` URLs.

    Raises:
        InvalidURL: for unknown options, a custom clock (block time rules), or a bad URL.
    """
    if unknown:
        raise InvalidURL(f"unknown option(s) {sorted(unknown)} for {url!r}; evm ledgers take "
                         "withdraw_delay, address and fund_cap")
    if clock is not None:
        raise InvalidURL("EVM ledgers keep block time; open them without clock=")
    if address is not None and url.startswith("evm://"):
        raise InvalidURL("address= attaches to a deployed ledger on a node; the embedded chain always deploys")
    return EVMLedger(url, minter=minter, withdraw_delay=withdraw_delay, address=address, fund_cap=fund_cap)
