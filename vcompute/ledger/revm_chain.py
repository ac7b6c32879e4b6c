"""``evm://``: the embedded chain on revm (the Rust EVM inside reth and foundry), through pyrevm.

It runs the same compiled ``protocols/*.vy`` bytecode as ``evm://tester``
(py-evm) and any node, with the transport interface of
:mod:`vcompute.ledger.evm_chain`. Being in-process with no other writer, it
also offers :meth:`RevmChain.transact`: the ledger client executes a call as
the account derived from the caller's private key without encoding and
signing a transaction, which is what makes it fast (signing proves nothing
to a chain that lives in the same process). Signed raw transactions are
accepted too (:meth:`RevmChain.send_raw`): their signature is checked and
their sender recovered.

Block time only moves when asked (:meth:`RevmChain.advance`), so a run is
reproducible to the second. Transactions are not charged gas (gas price 0).
Each transaction's transient storage (EIP-1153) is cleared after it, as a
block would. Its journal is never closed, though (so that any snapshot can
be restored), so storage an earlier transaction touched stays warm: the gas
in a receipt is a lower bound (about 20% low for a transfer). The gas table
``protocols/gas.md`` is measured on py-evm (``benchmarks/gas.py``).
"""

from __future__ import annotations

import math
from typing import Any

from vcompute.ledger.errors import LedgerError

__all__ = ["RevmChain", "RevmRevert", "decode_revert"]

_DEPLOYER = "0x" + "de" * 20
_START = 1_700_000_000
_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


class RevmRevert(LedgerError):
    """A call or transaction reverted on the embedded revm chain; ``reason`` is the contract's."""

    def __init__(self, reason: str, gas_used: int = 0) -> None:
        super().__init__(f"execution reverted: {reason}")
        self.reason = reason
        self.gas_used = gas_used


def decode_revert(message: str) -> str:
    """The revert reason in pyrevm's error text (``Revert { gas_used: N, output: 0x... }``).

    Example:
        >>> from eth_abi import encode
        >>> out = "08c379a0" + encode(["string"], ["funds: balance too small"]).hex()
        >>> decode_revert("Revert { gas_used: 1, output: 0x" + out + " }")
        'funds: balance too small'
    """
    _, sep, rest = message.partition("output: 0x")
    if not sep:
        return message.strip() or "reverted without a reason"
    raw = bytes.fromhex("".join(ch for ch in rest.split()[0] if ch in "0123456789abcdefABCDEF"))
    if raw[:4] == _ERROR_SELECTOR:
        from eth_abi import decode

        try:
            return str(decode(["string"], raw[4:])[0])
        except Exception:  # a malformed Error(string) payload still has to yield a message
            pass
    return f"reverted with data 0x{raw.hex()}" if raw else "reverted without a reason"


def _gas_used(message: str) -> int:
    _, sep, rest = message.partition("gas_used: ")
    digits = "".join(ch for ch in rest.split(",")[0] if ch.isdigit()) if sep else ""
    return int(digits) if digits else 0


class RevmChain:
    """The embedded revm chain (see the module docstring).

    Args:
        chain_id: the chain id transactions must be signed for.
        start_time: block time at genesis (seconds).
    """

    def __init__(self, *, chain_id: int = 31337, start_time: int = _START) -> None:
        from eth_utils import to_checksum_address
        from pyrevm import BlockEnv

        self._BlockEnv = BlockEnv
        self.chain_id = int(chain_id)
        self._start = int(start_time)
        self.deployer = to_checksum_address(_DEPLOYER)
        #: gas used by the last transaction (for the gas tables)
        self.last_gas = 0
        self._next_snap = 0
        self._genesis()

    def _genesis(self) -> None:
        from pyrevm import EVM, BlockEnv, CfgEnv, Env

        self._time, self._number, self._txs = self._start, 1, 0
        self.evm = EVM(env=Env(cfg=CfgEnv(chain_id=self.chain_id),
                               block=BlockEnv(number=self._number, timestamp=self._time)), spec_id="CANCUN")
        self.evm.set_balance(self.deployer, 10**30)
        self._nonces: dict[str, int] = {}
        # What ran on this branch since genesis, so any snapshot can be restored by replaying
        # (revm's journal only reverts backwards, to a checkpoint still on the stack).
        self._ops: list[tuple] = []
        self._live: list[tuple[int, Any]] = []  # (snapshot id, journal checkpoint), oldest first

    @staticmethod
    def revert_reason(error: Exception) -> str | None:
        """``"execution reverted: <reason>"`` if ``error`` is a revert, else None."""
        return str(error) if isinstance(error, RevmRevert) else None

    def _run(self, sender: str, to: str, data: bytes, value: int, *, static: bool) -> bytes:
        try:
            return bytes(self.evm.message_call(sender, to, data, value or None, 30_000_000, None, static))
        except RuntimeError as e:
            msg = str(e)
            if msg.startswith("Revert") or "Revert {" in msg:
                raise RevmRevert(decode_revert(msg), _gas_used(msg)) from None
            raise LedgerError(f"the embedded EVM halted: {msg[:300]}") from None

    def call(self, sender: str, to: str, data: str | bytes, block: str = "pending") -> bytes:
        """Run ``data`` against ``to`` as ``sender`` and discard its effects; the raw return bytes.

        Raises:
            RevmRevert: if the call reverts (its reason is the contract's).
        """
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        snap = self.evm.snapshot()
        try:
            return self._run(sender, to, raw, 0, static=False)
        finally:
            self.evm.revert(snap)

    def transact(self, sender: str, to: str, data: str | bytes, value: int = 0) -> dict:
        """Execute a state-changing call as ``sender`` (one block); its receipt.

        Raises:
            RevmRevert: if it reverts (no state changes).
        """
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        try:
            # A reverted top-level call leaves no state change in revm, so no checkpoint is needed
            # (an uncommitted checkpoint per transaction would deepen the journal without bound).
            self._run(sender, to, raw, value, static=False)
        except RevmRevert as e:
            self.last_gas = e.gas_used
            self.evm.reset_transient_storage()
            raise
        self.evm.reset_transient_storage()  # a transaction's transient storage ends with it
        self._ops.append(("call", sender, to, raw, value))
        return self._receipt()

    def _receipt(self, contract_address: str | None = None) -> dict:
        res = self.evm.result
        self._txs += 1
        self._number += 1
        self.last_gas = int(res.gas_used) if res is not None else 0
        logs = []
        for log in (res.logs if res is not None else []):
            topics, data = log.data  # one conversion from Rust: (topics as bytes, data)
            logs.append({"address": log.address, "topics": topics, "data": bytes(data)})
        rc = {"status": 1, "logs": logs, "gasUsed": self.last_gas,
              "transactionHash": "0x" + self._txs.to_bytes(32, "big").hex(), "blockNumber": self._number}
        if contract_address is not None:
            rc["contractAddress"] = contract_address
        return rc

    def nonce(self, addr: str) -> int:
        """The next transaction nonce of ``addr`` (counted by this chain for signed transactions)."""
        return self._nonces.get(addr.lower(), 0)

    def send_raw(self, raw: bytes) -> dict:
        """Execute a signed transaction (signature checked, sender recovered, nonce enforced); its receipt.

        Raises:
            LedgerError: for a bad signature, chain id or nonce.
            RevmRevert: if it reverts.
        """
        from eth_account import Account
        from eth_account.typed_transactions import TypedTransaction

        try:
            sender = Account.recover_transaction(raw)
            tx = TypedTransaction.from_bytes(bytes(raw)).as_dict()
        except Exception as e:  # any decoding failure of the bytes is a refused transaction
            raise LedgerError(f"not a valid signed transaction: {e}") from None
        if int(tx.get("chainId", -1)) != self.chain_id:
            raise LedgerError(f"transaction signed for chain {tx.get('chainId')}, this chain is {self.chain_id}")
        key = sender.lower()
        if int(tx["nonce"]) != self._nonces.get(key, 0):
            raise LedgerError(f"nonce {tx['nonce']} of {sender} is not the next one ({self._nonces.get(key, 0)})")
        self._nonces[key] = int(tx["nonce"]) + 1
        to = tx.get("to")
        to = "0x" + bytes(to).hex() if isinstance(to, (bytes, bytearray)) else to
        return self.transact(sender, to, bytes(tx.get("data", b"")), int(tx.get("value", 0)))

    def send_from_node(self, tx: dict) -> dict:
        """Send a transaction from the chain's own funded account (deploys when ``to`` is absent)."""
        data = tx.get("data", b"")
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        if "to" not in tx:
            addr = self._deploy(raw, int(tx.get("value", 0)))
            self._ops.append(("deploy", raw, int(tx.get("value", 0))))
            return self._receipt(addr)
        if raw:
            return self.transact(self.deployer, tx["to"], raw, int(tx.get("value", 0)))
        self._fund(tx["to"], int(tx.get("value", 0)))
        self._ops.append(("fund", tx["to"], int(tx.get("value", 0))))
        return self._receipt()

    def _deploy(self, code: bytes, value: int) -> str:
        from eth_utils import to_checksum_address

        try:
            return to_checksum_address(self.evm.deploy(self.deployer, code, value or None, 30_000_000))
        except RuntimeError as e:
            raise LedgerError(f"deploying on the embedded EVM failed: {decode_revert(str(e))}") from None

    def _fund(self, addr: str, value: int) -> None:
        self.evm.set_balance(addr, self.evm.get_balance(addr) + value)

    def balance(self, addr: str) -> int:
        """Ether balance of ``addr`` in wei."""
        return int(self.evm.get_balance(addr))

    def now(self) -> int:
        """Timestamp the next block will carry."""
        return self._time

    def advance(self, seconds: float) -> None:
        """Move block time forward by ``seconds`` (rounded up, at least 1)."""
        self._time += max(1, math.ceil(seconds))
        self._ops.append(("time", self._time))
        self._set_block()

    def _set_block(self) -> None:
        self.evm.set_block_env(self._BlockEnv(number=self._number, timestamp=self._time))

    def snapshot(self) -> Any:
        """Snapshot the chain state (and its clock); an id for :meth:`revert`, usable any number of times."""
        self._next_snap += 1
        snap = (self._next_snap, tuple(self._ops), self._time, self._number, self._txs, dict(self._nonces))
        self._live.append((self._next_snap, self.evm.snapshot()))
        return snap

    def revert(self, snap: Any) -> None:
        """Restore a snapshot (its clock too), whether taken before or after the current state.

        A snapshot still on the journal's stack is reverted to directly; any other (one whose
        state was itself reverted away) is rebuilt by replaying its history from genesis.
        """
        sid, ops, time_, number, txs, nonces = snap
        ids = [i for i, _ in self._live]
        if sid in ids:
            k = ids.index(sid)
            checkpoint = self._live[k][1]
            del self._live[k:]
            self.evm.revert(checkpoint)
        else:
            self._genesis()
            self._replay(ops)
        self._ops, self._time, self._number, self._txs = list(ops), time_, number, txs
        self._nonces = dict(nonces)
        self._set_block()
        self._live.append((sid, self.evm.snapshot()))

    def _replay(self, ops: tuple) -> None:
        for op in ops:
            if op[0] == "call":
                self._run(op[1], op[2], op[3], op[4], static=False)
            elif op[0] == "deploy":
                self._deploy(op[1], op[2])
            elif op[0] == "fund":
                self._fund(op[1], op[2])
            else:  # "time"
                self._time = op[1]
                self._set_block()
