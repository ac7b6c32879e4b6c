"""Transports for the EVM ledger: the embedded eth-tester chain and any JSON-RPC node.

The embedded revm chain (``evm://``) is :mod:`vcompute.ledger.revm_chain`.

Both offer the same few calls :class:`vcompute.ledger.evm.EVMLedger` needs:
``call``, ``send_raw``, ``send_from_node``, ``nonce``, ``balance``, ``now``,
``advance``, ``snapshot`` and ``revert``. web3 and eth-tester are imported
when a transport is created.
"""

from __future__ import annotations

import math
from typing import Any

from vcompute.ledger.errors import InvalidURL, LedgerError

__all__ = ["GAS", "RPCChain", "TesterChain"]

#: Gas limit for ledger transactions (deployment gets 8x).
GAS = 3_000_000


class TesterChain:
    """The embedded chain (eth-tester on py-evm), talked to directly rather than through
    web3, whose middleware costs ~10 ms per call and would halve throughput."""

    def __init__(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend

        self.tester = EthereumTester(PyEVMBackend())
        self.deployer = self.tester.get_accounts()[0]
        self.chain_id = 131277322940537  # eth-tester's fixed chain id

    @staticmethod
    def revert_reason(error: Exception) -> str | None:
        """The contract's revert reason if ``error`` is a revert, else None."""
        from eth_tester.exceptions import TransactionFailed

        return str(error) if isinstance(error, TransactionFailed) else None

    def call(self, sender: str, to: str, data: str, block: str = "pending") -> bytes:
        """Run ``data`` against contract ``to`` as ``sender`` without a transaction; the raw return bytes."""
        data = "0x" + bytes(data).hex() if isinstance(data, (bytes, bytearray)) else data
        out = self.tester.call({"from": sender, "to": to, "data": data, "gas": 30_000_000}, block)
        return bytes.fromhex(out[2:]) if isinstance(out, str) else bytes(out)

    def nonce(self, addr: str) -> int:
        """The next transaction nonce of ``addr``."""
        return self.tester.get_nonce(addr)

    def mined(self, txh: bytes) -> bool:
        """Whether the transaction with hash ``txh`` has a receipt."""
        try:
            self.tester.get_transaction_receipt("0x" + bytes(txh).hex())
        except Exception:  # eth-tester raises TransactionNotFound for an unknown hash
            return False
        return True

    def send_raw(self, raw: bytes) -> dict:
        """Send a signed transaction and return its receipt (a dict)."""
        h = self.tester.send_raw_transaction("0x" + raw.hex())
        return self.tester.get_transaction_receipt(h)

    def send_from_node(self, tx: dict) -> dict:
        """Send a transaction from the node's own first account; its receipt."""
        if isinstance(tx.get("data"), (bytes, bytearray)):
            tx = {**tx, "data": "0x" + bytes(tx["data"]).hex()}
        h = self.tester.send_transaction({"from": self.deployer, "gas": 8 * GAS if "to" not in tx else GAS, **tx})
        return self.tester.get_transaction_receipt(h)

    def balance(self, addr: str) -> int:
        """Ether balance of ``addr`` in wei."""
        return self.tester.get_balance(addr)

    def base_fee(self) -> int:
        """The base fee per gas (wei) the next block charges."""
        return int(self.tester.get_block_by_number("pending").get("base_fee_per_gas") or 0)

    def now(self) -> int:
        """Timestamp the next block will carry."""
        return int(self.tester.get_block_by_number("pending")["timestamp"])

    def advance(self, seconds: float) -> None:
        """Move block time forward by ``seconds`` (rounded up, at least 1)."""
        self.tester.time_travel(self.now() + max(1, math.ceil(seconds)))

    def snapshot(self) -> Any:
        """Snapshot the chain state; an id for :meth:`revert`."""
        return self.tester.take_snapshot()

    def revert(self, snap: Any) -> None:
        """Revert the chain to a snapshot."""
        self.tester.revert_to_snapshot(snap)


class RPCChain:
    """Any JSON-RPC node, through web3.

    Args:
        endpoint: ``http(s)://HOST:PORT``.

    Raises:
        InvalidURL: if no node answers there.
    """

    def __init__(self, endpoint: str) -> None:
        from web3 import Web3

        self.w3 = Web3(Web3.HTTPProvider(endpoint, request_kwargs={"timeout": 30}))
        try:
            self.deployer = self.w3.eth.accounts[0]
            self.chain_id = self.w3.eth.chain_id
        except Exception as e:
            raise InvalidURL(f"no usable JSON-RPC node at {endpoint}: {e}; start one (e.g. `anvil`) "
                             "or use evm://tester") from None

    @staticmethod
    def revert_reason(error: Exception) -> str | None:
        """The contract's revert reason if ``error`` is a revert, else None."""
        msg = getattr(error, "message", None) or str(error)  # web3's ContractLogicError: message, data
        return str(msg) if "execution reverted" in str(msg) else None

    def call(self, sender: str, to: str, data: str, block: str = "pending") -> bytes:
        """Run ``data`` against contract ``to`` as ``sender`` without a transaction; the raw return bytes."""
        return bytes(self.w3.eth.call({"from": sender, "to": to, "data": data}, block))

    def nonce(self, addr: str) -> int:
        """The next transaction nonce of ``addr``."""
        return self.w3.eth.get_transaction_count(addr, "pending")

    def send_raw(self, raw: bytes) -> dict:
        """Send a signed transaction and return its receipt (a dict)."""
        h = self.w3.eth.send_raw_transaction(raw)
        return dict(self.w3.eth.wait_for_transaction_receipt(h))

    def send_from_node(self, tx: dict) -> dict:
        """Send a transaction from the node's own first account; its receipt."""
        h = self.w3.eth.send_transaction({"from": self.deployer, **tx})
        return dict(self.w3.eth.wait_for_transaction_receipt(h))

    def balance(self, addr: str) -> int:
        """Ether balance of ``addr`` in wei."""
        return self.w3.eth.get_balance(addr)

    def now(self) -> int:
        """Timestamp the next block will carry."""
        return int(self.w3.eth.get_block("pending")["timestamp"])

    def advance(self, seconds: float) -> None:
        """Move block time forward by ``seconds`` (rounded up, at least 1)."""
        try:
            self.w3.provider.make_request("evm_increaseTime", [max(1, math.ceil(seconds))])
            self.w3.provider.make_request("evm_mine", [])
        except Exception as e:
            raise LedgerError(f"this node cannot move time ({e}); only dev nodes (anvil, hardhat) can") from None

    def snapshot(self) -> Any:
        """Snapshot the chain state; an id for :meth:`revert`."""
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snap: Any) -> None:
        """Revert the chain to a snapshot (a node drops it, and every newer one, when reverting).

        Raises:
            LedgerError: if the node no longer has the snapshot.
        """
        if not self.w3.provider.make_request("evm_revert", [snap]).get("result"):
            raise LedgerError(f"the node has no snapshot {snap!r} (reverting to an older one drops newer ones)")
