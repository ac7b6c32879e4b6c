"""``evm+http://``: the EVM ledger through a real HTTP JSON-RPC endpoint.

No external node is needed: a small JSON-RPC server in a thread forwards to
an eth-tester chain, and answers the dev methods (``evm_snapshot``,
``evm_revert``, ``evm_increaseTime``, ``evm_mine``) the way anvil and hardhat do.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

import vcompute.ledger as vl  # noqa: E402
from ledger_helpers import Parties  # noqa: E402


def _rpc_json(x):
    """web3's decoded values back to JSON-RPC wire form: quantities and bytes as hex."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int):
        return hex(x)
    if isinstance(x, (bytes, bytearray)):
        return "0x" + bytes(x).hex()
    if isinstance(x, dict) or hasattr(x, "items"):
        return {k: _rpc_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_rpc_json(v) for v in x]
    return x


def _serve():
    from web3 import EthereumTesterProvider, Web3

    w3 = Web3(EthereumTesterProvider())
    tester = w3.provider.ethereum_tester

    def dev(method, params):
        if method == "evm_snapshot":
            return tester.take_snapshot()
        if method == "evm_revert":
            tester.revert_to_snapshot(params[0])
            return True
        if method == "evm_increaseTime":
            tester.time_travel(tester.get_block_by_number("pending")["timestamp"] + int(params[0]))
            return int(params[0])
        if method == "evm_mine":
            tester.mine_blocks(1)
            return "0x0"
        raise KeyError(method)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            out = {"jsonrpc": "2.0", "id": req.get("id")}
            try:
                if req["method"].startswith("evm_"):
                    out["result"] = dev(req["method"], req.get("params", []))
                else:
                    out["result"] = _rpc_json(w3.manager.request_blocking(req["method"], req.get("params", [])))
            except Exception as e:  # a node reports failures as JSON-RPC errors
                out["error"] = {"code": 3 if "reverted" in str(e) else -32000, "message": str(e)}
            body = json.dumps(out, default=lambda o: o.hex() if isinstance(o, bytes) else str(o)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def node():
    server = _serve()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ledger_over_json_rpc(node):
    led = vl.open(f"evm+http://{node}?withdraw_delay=20")
    p = Parties(led)
    assert led.balance("alice") == 1000 and vl.check_conservation(led) == 5000
    r = led.transfer(p.alice, "bob", 10, op_id="t")
    assert not r.replayed and r.ref
    assert led.transfer(p.alice, "bob", 10, op_id="t").replayed
    with pytest.raises(vl.InsufficientFunds):
        led.transfer(p.alice, "bob", 10**6, op_id="t2")
    with pytest.raises(vl.OperationConflict):
        led.transfer(p.alice, "bob", 11, op_id="t")
    with pytest.raises(vl.Unauthorized):
        led.mint(p.alice, "alice", 1, op_id="m")
    with pytest.raises(vl.UnknownAccount):
        led.transfer(vl.default_minter().__class__(b"\x09" * 32), "bob", 1, op_id="x")
    led.escrow_open(p.alice, "job", provider="bob", amount=100, deadline=led.now() + 30, op_id="e")
    with pytest.raises(vl.Unauthorized):
        led.escrow_refund(p.alice, "job", op_id="f")
    led.advance(40)
    led.escrow_refund(p.alice, "job", op_id="f")
    assert led.escrow("job").state == "refunded"
    assert led.balance("alice") == 990 and led.balance("bob") == 1010
    assert vl.check_conservation(led) == 5000


def test_attach_to_a_deployed_ledger(node):
    first = vl.open(f"evm+http://{node}")
    p = Parties(first)
    again = vl.open(f"evm+http://{node}?address={first.address}")
    assert again.balance("alice") == 1000 and again.accounts() == first.accounts()
    again.transfer(p.alice, "bob", 1, op_id="via-second-client")
    assert first.balance("bob") == 1001
