"""web3 on the embedded revm chain: a provider answering the JSON-RPC calls web3 makes, from RevmChain.

So that tests written against web3 (``tests/ledger/test_job_escrow.py``) run
unchanged on ``evm://``'s engine as well as on eth-tester's py-evm. Transactions
from the unlocked accounts run as calls from those accounts (revm charges no
gas); a reverted one is reported as JSON-RPC error 3 with the contract's
reason, as a node does when it estimates gas first. Imported by name: tests/
has no packages.
"""

from __future__ import annotations

from typing import Any

from web3.providers import BaseProvider

from vcompute.ledger.revm_chain import RevmChain, RevmRevert

_ACCOUNTS = ["0x" + f"{i:02x}" * 20 for i in range(0x11, 0x1b)]
_FUNDS = 10**24


def _q(v: Any) -> int:
    return int(v, 16) if isinstance(v, str) else int(v or 0)


def _b(v: Any) -> bytes:
    return bytes.fromhex(v[2:]) if isinstance(v, str) else bytes(v or b"")


class RevmProvider(BaseProvider):
    """A web3 provider over one :class:`RevmChain` (its first account is the chain's deployer)."""

    def __init__(self, chain: RevmChain | None = None) -> None:
        super().__init__()
        self.chain = chain or RevmChain()
        self.accounts = [self.chain.deployer.lower()] + _ACCOUNTS
        for a in _ACCOUNTS:
            self.chain.send_from_node({"to": a, "value": _FUNDS})
        self.receipts: dict[str, dict] = {}

    def _block(self) -> dict:
        c = self.chain
        return {"number": hex(c._number), "timestamp": hex(c.now()), "baseFeePerGas": "0x0", "gasLimit": hex(30_000_000),
                "gasUsed": "0x0", "hash": "0x" + c._number.to_bytes(32, "big").hex(), "parentHash": "0x" + "00" * 32,
                "transactions": [], "miner": "0x" + "00" * 20, "difficulty": "0x0", "extraData": "0x",
                "size": "0x0", "nonce": "0x" + "00" * 8, "logsBloom": "0x" + "00" * 256, "stateRoot": "0x" + "00" * 32,
                "receiptsRoot": "0x" + "00" * 32, "transactionsRoot": "0x" + "00" * 32, "sha3Uncles": "0x" + "00" * 32,
                "uncles": [], "mixHash": "0x" + "00" * 32, "totalDifficulty": "0x0"}

    def _send(self, tx: dict) -> str:
        c = self.chain
        sender, value, data = tx.get("from", c.deployer), _q(tx.get("value")), _b(tx.get("data") or tx.get("input"))
        if not tx.get("to"):
            if sender.lower() != c.deployer.lower():
                raise RevmRevert("this provider deploys from the chain's deployer (accounts[0]) only")
            rc = c.send_from_node({"data": data, "value": value})
        else:  # a call, or a plain ether transfer
            rc = c.transact(sender, tx["to"], data, value)
        txh = rc["transactionHash"]
        self.receipts[txh] = {
            "transactionHash": txh, "transactionIndex": "0x0", "blockHash": "0x" + rc["blockNumber"].to_bytes(32, "big").hex(),
            "blockNumber": hex(rc["blockNumber"]), "from": sender, "to": tx.get("to"),
            "contractAddress": rc.get("contractAddress"), "cumulativeGasUsed": hex(rc["gasUsed"]),
            "gasUsed": hex(rc["gasUsed"]), "effectiveGasPrice": "0x0", "status": hex(rc["status"]), "type": "0x2",
            "logsBloom": "0x" + "00" * 256,
            "logs": [{"address": lg["address"], "topics": ["0x" + bytes(t).hex() for t in lg["topics"]],
                      "data": "0x" + bytes(lg["data"]).hex(), "blockNumber": hex(rc["blockNumber"]),
                      "transactionHash": txh, "transactionIndex": "0x0", "blockHash": "0x" + "00" * 32,
                      "logIndex": hex(i), "removed": False} for i, lg in enumerate(rc["logs"])]}
        return txh

    def make_request(self, method: str, params: Any) -> dict:
        """Answer one JSON-RPC call (errors as JSON-RPC errors, reverts with code 3)."""
        c = self.chain
        try:
            if method == "eth_chainId":
                result: Any = hex(c.chain_id)
            elif method == "eth_accounts":
                result = list(self.accounts)
            elif method == "eth_blockNumber":
                result = hex(c._number)
            elif method == "eth_getBlockByNumber":
                result = self._block()
            elif method in ("eth_gasPrice", "eth_maxPriorityFeePerGas"):
                result = "0x0"
            elif method == "eth_getBalance":
                result = hex(c.balance(params[0]))
            elif method == "eth_getTransactionCount":
                result = "0x0"
            elif method in ("eth_call", "eth_estimateGas"):
                tx = params[0]
                if not tx.get("to"):
                    result = hex(8_000_000)
                else:
                    snap = c.evm.snapshot()
                    try:
                        out = c._run(tx.get("from", c.deployer), tx["to"], _b(tx.get("data") or tx.get("input")),
                                     _q(tx.get("value")), static=False)
                        gas = c.evm.result.gas_used if c.evm.result is not None else 0
                    finally:
                        c.evm.revert(snap)
                    result = "0x" + out.hex() if method == "eth_call" else hex(max(int(gas) * 2, 100_000))
            elif method == "eth_sendTransaction":
                result = self._send(params[0])
            elif method == "eth_getTransactionReceipt":
                result = self.receipts.get(params[0])
            else:
                return {"jsonrpc": "2.0", "id": 0, "error": {"code": -32601, "message": f"method {method} not found"}}
        except RevmRevert as e:
            return {"jsonrpc": "2.0", "id": 0, "error": {"code": 3, "message": f"execution reverted: {e.reason}"}}
        return {"jsonrpc": "2.0", "id": 0, "result": result}

    def is_connected(self, show_traceback: bool = False) -> bool:
        """Always: the chain is in this process."""
        return True


class RevmTester:
    """The few eth-tester calls the JobEscrow tests make (snapshots and time travel), on a RevmChain."""

    def __init__(self, chain: RevmChain) -> None:
        self.chain = chain

    def take_snapshot(self) -> Any:
        """A snapshot id."""
        return self.chain.snapshot()

    def revert_to_snapshot(self, snap: Any) -> None:
        """Restore ``snap``."""
        self.chain.revert(snap)

    def time_travel(self, timestamp: int) -> None:
        """Move block time to ``timestamp``."""
        if timestamp > self.chain.now():
            self.chain.advance(timestamp - self.chain.now())
