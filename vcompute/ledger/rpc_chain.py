"""``evm+http://``: any JSON-RPC node, over one kept-alive connection, without web3's middleware.

The transport interface is that of :mod:`vcompute.ledger.evm_chain`. Each
operation is one signed transaction, sent with ``eth_sendRawTransactionSync``
(EIP-7966: the node answers with the receipt once it is mined; anvil >= 1.4)
so that one operation is one round trip. A node without that method is asked
once, remembered, and sent ``eth_sendRawTransaction`` with the receipt request
in the same JSON-RPC batch (anvil, hardhat, geth take batches); when the receipt
is not there yet (a node with a block time) it is polled. Nonces are
pipelined by the ledger client; a refused send re-reads the node's nonce.

A node that restarts (from its saved state) is reconnected to transparently;
a retry with the same op_id is then recognised by the contract, so an
operation is applied once across the restart.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from vcompute.ledger.errors import InvalidURL, LedgerError

__all__ = ["NodeChain", "RPCError"]


class RPCError(LedgerError):
    """The node answered a JSON-RPC error (``code``, ``message``, ``data``)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code, self.message, self.data = code, message, data


def _hex(x: int) -> str:
    return hex(int(x))


def _q(x: Any) -> int:
    return int(x, 16) if isinstance(x, str) else int(x)


class NodeChain:
    """A JSON-RPC node (see the module docstring).

    Args:
        endpoint: ``http://HOST:PORT[/path]`` (https too).
        timeout: seconds to wait for one answer.

    Raises:
        InvalidURL: if no node answers there.
    """

    def __init__(self, endpoint: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidURL(f"not an http(s) JSON-RPC endpoint: {endpoint!r}")
        self.endpoint = endpoint
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port or (443 if self._https else 80)
        self._path = parts.path or "/"
        self._timeout = float(timeout)
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0
        self._batch_ok: bool | None = None
        self._sync_ok = True  # eth_sendRawTransactionSync, until the node says it has no such method
        try:
            self.chain_id = _q(self.request("eth_chainId", []))
            accounts = self.request("eth_accounts", [])
        except (OSError, LedgerError) as e:
            raise InvalidURL(f"no usable JSON-RPC node at {endpoint}: {e}; start one (`vcompute ledger node`, "
                             "or anvil) or use evm://") from None
        if not accounts:
            raise InvalidURL(f"the node at {endpoint} has no unlocked account to deploy and fund from; "
                             "use a dev node (anvil, hardhat)")
        from eth_utils import to_checksum_address

        self.deployer = to_checksum_address(accounts[0])
        self._batch_ok = self._probe_batches()

    def _probe_batches(self) -> bool:
        """Whether the node answers JSON-RPC batches (asked once, with a harmless pair of calls), so a
        batch that carries a transaction is never sent to a node that might drop it."""
        try:
            out = self._post([{"jsonrpc": "2.0", "id": -1, "method": "eth_chainId", "params": []},
                              {"jsonrpc": "2.0", "id": -2, "method": "eth_chainId", "params": []}])
        except (OSError, http.client.HTTPException, ValueError):
            self._close()
            return False
        return isinstance(out, list) and len(out) == 2
    # -- wire --------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
            self._conn.connect()
            if self._conn.sock is not None:
                self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._conn

    def _post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        for attempt in range(2):  # one reconnect: the node closed the kept-alive connection or restarted
            try:
                conn = self._connection()
                conn.request("POST", self._path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close" or resp.version == 10:
                    self._close()
                return json.loads(data)
            except (OSError, http.client.HTTPException):
                self._close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _answer(self, msg: dict) -> Any:
        if "error" in msg and msg["error"] is not None:
            err = msg["error"]
            raise RPCError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return msg.get("result")

    def request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call; its result.

        Raises:
            RPCError: if the node answers an error.
        """
        self._id += 1
        return self._answer(self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}))

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one round trip where the node takes batches (else one by one); results or
        :class:`RPCError` instances, in order."""
        if self._batch_ok:
            first = self._id + 1
            payload = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
            self._id += len(calls)
            out = self._post(payload)
            if isinstance(out, list):
                by_id = {m.get("id"): m for m in out if isinstance(m, dict)}
                results: list[Any] = []
                for i in range(len(calls)):
                    try:
                        results.append(self._answer(by_id.get(first + i, {"error": {"code": -1, "message": "no answer"}})))
                    except RPCError as e:
                        results.append(e)
                return results
            raise LedgerError(f"the node answered a batch with {type(out).__name__}; it took batches before")
        results = []
        for m, p in calls:
            try:
                results.append(self.request(m, p))
            except RPCError as e:
                results.append(e)
        return results

    # -- transport interface ------------------------------------------------

    @staticmethod
    def revert_reason(error: Exception) -> str | None:
        """``"execution reverted: <reason>"`` if ``error`` is a revert, else None."""
        if isinstance(error, RPCError):
            msg = error.message
            if "revert" in msg.lower():
                reason = _revert_data_reason(error.data)
                if reason is not None:
                    return f"execution reverted: {reason}"
                return msg if "execution reverted" in msg else f"execution reverted: {msg}"
        return None

    def call(self, sender: str, to: str, data: str | bytes, block: str = "pending") -> bytes:
        """Run ``data`` against ``to`` as ``sender`` without a transaction; the raw return bytes."""
        hexdata = "0x" + bytes(data).hex() if isinstance(data, (bytes, bytearray)) else data
        out = self.request("eth_call", [{"from": sender, "to": to, "data": hexdata}, block])
        return bytes.fromhex(out[2:])

    def nonce(self, addr: str) -> int:
        """The next transaction nonce of ``addr`` (pending transactions counted)."""
        return _q(self.request("eth_getTransactionCount", [addr, "pending"]))

    def _receipt(self, txh: str) -> dict:
        deadline = time.monotonic() + self._timeout
        delay = 0.0  # a dev node mines within a millisecond or two of the send: ask again at once first
        while True:
            rc = self.request("eth_getTransactionReceipt", [txh])
            if rc is not None:
                return _normal_receipt(rc)
            if time.monotonic() > deadline:
                raise LedgerError(f"no receipt for {txh} after {self._timeout:.0f} s; retry with the same op_id")
            time.sleep(delay)
            delay = min(max(delay * 2, 0.0005), 0.1)

    def mined(self, txh: bytes) -> bool:
        """Whether the transaction with hash ``txh`` has a receipt (False if the node cannot say)."""
        try:
            return self.request("eth_getTransactionReceipt", ["0x" + bytes(txh).hex()]) is not None
        except (OSError, LedgerError):
            return False

    def send_raw(self, raw: bytes) -> dict:
        """Send a signed transaction; its receipt (a dict)."""
        from eth_utils import keccak

        hexraw = "0x" + bytes(raw).hex()
        txh = "0x" + keccak(bytes(raw)).hex()
        if self._sync_ok:
            try:
                rc = self.request("eth_sendRawTransactionSync", [hexraw])
            except RPCError as e:
                # Nodes word "no such method" many ways; a misread real refusal is harmless: the same
                # signed bytes are sent again below and refused again, with the node's reason.
                msg = e.message.lower()
                no_method = e.code == -32601 or "-32601" in msg or "sendrawtransactionsync" in msg or (
                    "method" in msg and any(w in msg for w in ("not found", "not supported", "does not exist",
                                                               "unknown", "unsupported")))
                if not no_method:
                    if e.code == 4 or "timeout" in e.message.lower():  # EIP-7966: sent, not mined in time
                        return self._receipt(txh)
                    raise
                self._sync_ok = False  # an older node: batches from now on
            else:
                if isinstance(rc, dict):
                    return _normal_receipt(rc)
                return self._receipt(txh)
        sent, rc = self.batch([("eth_sendRawTransaction", [hexraw]), ("eth_getTransactionReceipt", [txh])])
        if isinstance(sent, RPCError):
            raise sent
        if isinstance(rc, dict):
            return _normal_receipt(rc)
        return self._receipt(txh)

    def send_from_node(self, tx: dict) -> dict:
        """Send a transaction from the node's own first account; its receipt."""
        out = {"from": self.deployer}
        for k, v in tx.items():
            if k == "data":
                out[k] = "0x" + bytes(v).hex() if isinstance(v, (bytes, bytearray)) else v
            elif k in ("value", "gas"):
                out[k] = _hex(v)
            else:
                out[k] = v
        txh = self.request("eth_sendTransaction", [out])
        return self._receipt(txh)

    def balance(self, addr: str) -> int:
        """Ether balance of ``addr`` in wei."""
        return _q(self.request("eth_getBalance", [addr, "latest"]))

    def base_fee(self) -> int:
        """The base fee per gas (wei) the next block charges (0 on a node without EIP-1559)."""
        return _q(self.request("eth_getBlockByNumber", ["pending", False]).get("baseFeePerGas") or 0)

    def now(self) -> int:
        """Timestamp the next block will carry."""
        return _q(self.request("eth_getBlockByNumber", ["pending", False])["timestamp"])

    def advance(self, seconds: float) -> None:
        """Move block time forward by ``seconds`` (rounded up, at least 1; dev nodes only)."""
        try:
            self.request("evm_increaseTime", [max(1, math.ceil(seconds))])
            self.request("evm_mine", [])
        except RPCError as e:
            raise LedgerError(f"this node cannot move time ({e.message}); only dev nodes (anvil, hardhat) can") from None

    def snapshot(self) -> Any:
        """Snapshot the chain state; an id for :meth:`revert` (dev nodes only)."""
        return self.request("evm_snapshot", [])

    def revert(self, snap: Any) -> None:
        """Revert the chain to a snapshot (a node drops it, and every newer one, when reverting).

        Raises:
            LedgerError: if the node no longer has the snapshot.
        """
        if not self.request("evm_revert", [snap]):
            raise LedgerError(f"the node has no snapshot {snap!r} (reverting to an older one drops newer ones)")


def _revert_data_reason(data: Any) -> str | None:
    raw = data.get("data") if isinstance(data, dict) else data
    if not isinstance(raw, str) or not raw.startswith("0x08c379a0"):
        return None
    from eth_abi import decode

    try:
        return str(decode(["string"], bytes.fromhex(raw[10:]))[0])
    except Exception:  # a malformed payload: fall back to the node's message
        return None


def _normal_receipt(rc: dict) -> dict:
    """A receipt as the ledger client reads it: ints for status, bytes for log data."""
    logs = [{"address": lg.get("address", ""), "topics": lg.get("topics", []),
             "data": bytes.fromhex(lg["data"][2:]) if isinstance(lg.get("data"), str) else lg.get("data", b"")}
            for lg in rc.get("logs", [])]
    return {"status": _q(rc.get("status", "0x1")), "logs": logs, "gasUsed": _q(rc.get("gasUsed", "0x0")),
            "effectiveGasPrice": _q(rc["effectiveGasPrice"]) if rc.get("effectiveGasPrice") is not None else None,
            "transactionHash": rc.get("transactionHash"), "contractAddress": rc.get("contractAddress"),
            "blockNumber": _q(rc.get("blockNumber", "0x0"))}
