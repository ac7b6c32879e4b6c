"""A real Ethereum node for the ``evm+http://`` ledger: foundry's anvil, started and stopped for you.

``make setup`` installs anvil from the npm registry into ``.tools/`` (git
ignores it). :func:`find_anvil` looks there, then at ``$VCOMPUTE_ANVIL``,
then on ``PATH``. :class:`AnvilNode` starts one on a free loopback port and
waits until it answers JSON-RPC; ``vcompute ledger node`` does the same for
a person and prints the URL to open the ledger with.

Example:
    >>> from vcompute.ledger.node import find_anvil
    >>> find_anvil() is None or find_anvil().name == "anvil"
    True
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["AnvilNode", "AnvilNotFound", "find_anvil", "free_port", "add_parser"]

_PACKAGE = "@foundry-rs/anvil-linux-amd64"
_LOCAL = Path("node_modules") / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


class AnvilNotFound(RuntimeError):
    """anvil is not installed where vcompute looks (the message says how to install it)."""


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def find_anvil() -> Path | None:
    """The anvil binary: ``.tools/`` of this checkout, ``$VCOMPUTE_ANVIL``, or ``PATH``; None if absent."""
    candidates = [_repo_root() / ".tools" / _LOCAL, Path.cwd() / ".tools" / _LOCAL]
    env = os.environ.get("VCOMPUTE_ANVIL")
    if env:
        candidates.insert(0, Path(env))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _rpc(url: str, method: str, params: list[Any], timeout: float = 2.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback URL we started
        return json.loads(resp.read())["result"]


class AnvilNode:
    """One anvil process on a free loopback port (a context manager).

    Args:
        port: the port (default: a free one).
        state: a file anvil loads its state from at start (if it exists) and dumps it to on exit,
            so a node can be stopped and restarted where it was.
        block_time: seconds between blocks (default: a block per transaction).
        binary: the anvil binary (default: :func:`find_anvil`).

    Raises:
        AnvilNotFound: if no anvil binary is found.
        RuntimeError: if the node does not answer within ``startup_timeout`` seconds.
    """

    host = "127.0.0.1"

    def __init__(self, *, port: int | None = None, state: str | Path | None = None,
                 block_time: float | None = None, binary: str | Path | None = None,
                 startup_timeout: float = 30.0) -> None:
        exe = Path(binary) if binary else find_anvil()
        if exe is None:
            raise AnvilNotFound("anvil not found: run `make setup` (installs it with npm into .tools/), "
                                f"or `npm install --prefix .tools {_PACKAGE}@1.7.1`, or set VCOMPUTE_ANVIL")
        self.binary = exe
        self.port = int(port) if port is not None else free_port(self.host)
        self.state = Path(state) if state is not None else None
        self.block_time = block_time
        self.startup_timeout = float(startup_timeout)
        self.proc: subprocess.Popen | None = None

    @property
    def rpc_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The ledger URL: ``evm+http://127.0.0.1:PORT``."""
        return f"evm+http://{self.host}:{self.port}"

    def start(self) -> AnvilNode:
        """Start the node and wait until it answers ``eth_chainId``."""
        cmd = [str(self.binary), "--host", self.host, "--port", str(self.port), "--silent"]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if self.state is not None:
            # --state loads the file if present and dumps to it on exit (SIGTERM)
            cmd += ["--state", str(self.state)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")[-800:] if self.proc.stderr else ""
                raise RuntimeError(f"anvil exited at start (code {self.proc.returncode}): {err}")
            try:
                _rpc(self.rpc_url, "eth_chainId", [], timeout=1.0)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"anvil did not answer on {self.rpc_url} within {self.startup_timeout:.0f} s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the node: SIGTERM (it dumps ``state``), or SIGKILL with ``kill`` (a crash: nothing dumped)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_parser(sub: Any) -> None:
    """Add ``node`` to the ``vcompute ledger`` subcommands (``sub``: their subparsers)."""
    n = sub.add_parser("node", help="start a local anvil node and print its ledger URL",
                       description="Start foundry's anvil on a loopback port and print the evm+http:// URL "
                                   "to open the ledger with; Ctrl-C stops it.")
    n.add_argument("--port", type=int, help="port (default: a free one)")
    n.add_argument("--state", help="file to load the chain from and save it to on exit")
    n.set_defaults(func=_cmd_node)


def _cmd_node(args: Any) -> int:
    try:
        node = AnvilNode(port=args.port, state=args.state).start()
    except AnvilNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"anvil {node.binary} listening; open the ledger with:\n  {node.url}\n(Ctrl-C to stop)", flush=True)
    try:
        while node.proc is not None and node.proc.poll() is None:
            time.sleep(0.5)
        print("anvil exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        node.stop()
