"""A client for ``protocols/Dispute.vy`` on an embedded revm (``pyrevm``).

The dispute game runs thousands of times in an experiment, so the client
drives the EVM directly (no JSON-RPC, no web3): :class:`DisputeChain`
deploys the checked-in build, sends calls from named accounts, moves the
clock, and reports each transaction's gas. A revert becomes
:class:`ContractRevert` carrying the contract's reason (``"state: ..."``,
``"unauthorized: ..."``, ``"timeout: ..."``, ``"value: ..."``).

Example:
    >>> chain = DisputeChain(move_timeout=100)        # doctest: +SKIP
    >>> chain.call("alice", "min_bond")               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vcompute.ledger.contracts import load_contract

__all__ = ["ContractRevert", "DisputeChain", "ETHER", "GameResult", "play", "referee", "CLAIM_STATES"]

#: Wei in one ether.
ETHER = 10**18
_DEPLOYER = "0x" + "d0" * 20
_BLOCK_GAS = 30_000_000


class ContractRevert(RuntimeError):
    """A call the contract refused; ``reason`` is its revert string (``""`` if none)."""

    def __init__(self, reason: str, gas: int | None = None) -> None:
        super().__init__(reason or "reverted without a reason")
        self.reason = reason
        self.gas = gas


def _address(name: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=f"vcompute-dispute-account:{name}")[-20:].hex()


class DisputeChain:
    """``Dispute.vy`` (with its float step checker ``FloatStep.vy``) deployed on a fresh in-process revm.

    Args:
        treasury: the account name that receives the loser's burned share, or ``None`` to burn it.
        burn_bps: the share of a loser's bond not paid to the winner, in basis points.
        move_timeout: seconds each party has for each move.
        min_bond: the least bond a claim may carry (wei).
        arity: segments the disagreement is cut into each round (2: bisection; at most 16).
        build: a compiled build to deploy instead of the checked-in one (benchmarks of other bounds).

    Raises:
        ImportError: if ``pyrevm`` or ``eth_abi`` is missing (``pip install 'vcompute[evm]'``).
    """

    def __init__(self, *, treasury: str | None = None, burn_bps: int = 1000, move_timeout: int = 3600,
                 min_bond: int = 1, arity: int = 2, build: dict[str, Any] | None = None) -> None:
        import pyrevm
        from eth_abi import encode

        self._pyrevm = pyrevm
        self.evm = pyrevm.EVM()
        self.time = 1_700_000_000
        self.number = 1
        self._set_block()
        self.evm.set_balance(_DEPLOYER, 10**30)
        self._abis: dict[str, dict[str, Any]] = {}
        self._at: dict[str, str] = {}
        float_step = self.deploy("FloatStep", as_="float_step")
        build = build if build is not None else load_contract("Dispute")
        ctor = next(f for f in build["abi"] if f.get("type") == "constructor")
        args = [self.address(treasury) if treasury else "0x" + "00" * 20, burn_bps, move_timeout, min_bond, arity,
                float_step]
        code = bytes.fromhex(build["bytecode"].removeprefix("0x")) + encode(
            [i["type"] for i in ctor["inputs"]], args)
        self.contract = self.evm.deploy(_DEPLOYER, code)
        self._abis["dispute"] = {f["name"]: f for f in build["abi"] if f.get("type") == "function"}
        self._at["dispute"] = self.contract
        self.last_gas = 0
        #: The winner's address in the last Settled event (the zero address: nobody won).
        self.last_settled = ""
        self._claims: list[tuple[bytes, str, bytes]] = []

    @property
    def escrow(self) -> str:
        """The address of ``JobEscrow.vy`` on this chain, deployed on first use, trusting this chain's game only."""
        if "escrow" not in self._at:
            self.deploy("JobEscrow", [self.contract], as_="escrow")
        return self._at["escrow"]

    def deploy(self, name: str, *args: Any, as_: str, build: dict[str, Any] | None = None) -> str:
        """Deploy the checked-in build of ``protocols/NAME.vy`` (or ``build``) with constructor ``args``; ``on=as_`` calls it.

        Returns:
            Its address.

        Raises:
            ValueError: if ``as_`` is already taken.
        """
        from eth_abi import encode

        if as_ in self._at:
            raise ValueError(f"a contract is already deployed as {as_!r}; pick another name")
        build = build if build is not None else load_contract(name)
        ctor = next((f for f in build["abi"] if f.get("type") == "constructor"), {"inputs": []})
        code = bytes.fromhex(build["bytecode"].removeprefix("0x")) + encode(
            [i["type"] for i in ctor["inputs"]], list(args))
        self._at[as_] = self.evm.deploy(_DEPLOYER, code)
        self._abis[as_] = {f["name"]: f for f in build["abi"] if f.get("type") == "function"}
        return self._at[as_]

    def _set_block(self) -> None:
        self.evm.set_block_env(self._pyrevm.BlockEnv(number=self.number, timestamp=self.time,
                                                     gas_limit=_BLOCK_GAS))

    @staticmethod
    def address(name: str) -> str:
        """The deterministic address of account ``name``."""
        return _address(name)

    def fund(self, name: str, wei: int) -> None:
        """Give account ``name`` a balance of ``wei``."""
        self.evm.set_balance(self.address(name), wei)

    def balance(self, name: str) -> int:
        """Account ``name``'s balance in wei."""
        return self.evm.get_balance(self.address(name))

    def contract_balance(self, on: str = "dispute") -> int:
        """The ``on`` contract's balance in wei."""
        return self.evm.get_balance(self._target(on))

    def advance(self, seconds: int) -> None:
        """Mine a block ``seconds`` later."""
        self.time += int(seconds)
        self.number += 1
        self._set_block()

    def at(self, on: str) -> str:
        """The address of contract ``on`` (``"dispute"``, ``"escrow"`` or a name given to :meth:`deploy`).

        Raises:
            ValueError: if ``on`` names no deployed contract.
        """
        return self._target(on)

    def _target(self, on: str) -> str:
        if on == "escrow":
            return self.escrow
        if on not in self._at:
            raise ValueError(f"on must be one of {', '.join(sorted({'escrow', *self._at}))}, got {on!r}")
        return self._at[on]

    def _calldata(self, fn: str, args: list[Any], on: str = "dispute") -> tuple[bytes, list[str]]:
        from eth_abi import encode
        from eth_utils import keccak

        f = self._abis[on][fn]
        types = [_abi_type(i) for i in f["inputs"]]
        sel = keccak(text=f"{fn}({','.join(types)})")[:4]
        return sel + encode(types, args), [_abi_type(o) for o in f.get("outputs", [])]

    def call(self, sender: str, fn: str, *args: Any, value: int = 0, gas: int = _BLOCK_GAS,
             on: str = "dispute") -> Any:
        """Send a transaction from ``sender`` calling ``fn(*args)``, mine it, and return its decoded output.

        Args:
            sender: the calling account's name.
            fn: the function.
            *args: its arguments.
            value: wei sent with the call.
            gas: the transaction's gas limit.
            on: ``"dispute"`` (``Dispute.vy``), ``"escrow"`` (``JobEscrow.vy``) or a name given to :meth:`deploy`.

        Raises:
            ContractRevert: if the contract reverts (its reason attached).
            KeyError: if ``fn`` is not a function of the contract.
            ValueError: if ``on`` names no deployed contract.
        """
        from eth_abi import decode

        to = self._target(on)
        data, outs = self._calldata(fn, list(args), on)
        try:
            out = self.evm.message_call(caller=self.address(sender), to=to, calldata=data,
                                        value=value, gas=gas)
        except RuntimeError as e:
            raise ContractRevert(_reason(str(e))) from None
        self.last_gas = int(self.evm.result.gas_used)
        self._note_settlement(self.evm.result.logs)
        self.advance(12)
        if not outs:
            return None
        vals = decode(outs, bytes(out))
        if fn == "commit" and on == "dispute":
            self._claims.append((vals[0], sender, bytes(args[0])))
        return vals[0] if len(vals) == 1 else vals

    def _note_settlement(self, logs: Any) -> None:
        from eth_utils import keccak

        topic = keccak(text="Settled(bytes32,address,address,uint8)")
        for log in logs:
            topics, data = log.topics, log.data
            if topics and bytes.fromhex(str(topics[0]).removeprefix("0x")) == topic:
                raw = bytes(data[1] if isinstance(data, tuple) else data)
                self.last_settled = "0x" + raw[12:32].hex()

    def record(self, fn: str, key: bytes, *, on: str = "dispute") -> dict[str, Any]:
        """A struct getter (``"claims"``, ``"games"``; ``"jobs"`` on the escrow) as a dict keyed by field name."""
        self._target(on)
        names = [c["name"] for c in self._abis[on][fn]["outputs"][0]["components"]]
        return dict(zip(names, self.view(fn, key, on=on)))

    def view_claim_id(self, net: Any, claimant: str) -> bytes:
        """The claim id of account ``claimant`` on a job of ``net`` (duck-typed: ``ops_tree``, ``n_layers``)."""
        claims = [c for c in self._claims if c[1] == claimant and c[2] == bytes(net.ops_tree.root)]
        if not claims:
            raise KeyError(f"{claimant} has committed no claim on this job")
        return claims[-1][0]

    def view(self, fn: str, *args: Any, on: str = "dispute") -> Any:
        """Read ``fn(*args)`` of the ``on`` contract without mining a block."""
        from eth_abi import decode

        to = self._target(on)
        data, outs = self._calldata(fn, list(args), on)
        out = self.evm.message_call(caller=_DEPLOYER, to=to, calldata=data, is_static=True)
        vals = decode(outs, bytes(out))
        return vals[0] if len(vals) == 1 else vals


#: Claim states of ``Dispute.vy``, by number.
CLAIM_STATES = ("unused", "committed", "disputed", "finalized", "slashed")
_DISPUTED, _SLASHED = 2, 4
_ONE_STEP, _ELEMENT = 3, 4
_FLOAT32 = 1


@dataclass
class GameResult:
    """How one dispute ended.

    Attributes:
        winner: ``"claimant"``, ``"challenger"`` or ``"none"`` (nobody proved the last step).
        how: ``"step"`` (the contract checked the last step), ``"timeout"`` or ``"none"``.
        rounds: rounds played (both parties' openings at the cut points make one round).
        gas: gas of every successful transaction from the dispute on (commit excluded).
        decide_gas: gas of the one-step check (0 if it did not run).
        refused: transactions the contract refused (inconsistent openings, wrong last steps).
        lo: the agreed state index where the game ended; hi = the disputed one.
    """

    winner: str
    how: str
    rounds: int
    gas: int
    decide_gas: int
    refused: int
    lo: int
    hi: int


def play(chain: DisputeChain, claimant: Any, challenger: Any, *, ops_root: bytes, input_state: bytes,
         bond: int, window: int = 86_400) -> GameResult:
    """Referee one dispute on ``chain`` between two players (:class:`vcompute.verify.dispute.players.Player`).

    The claimant commits its trace, the challenger disputes it, and each move the
    players offer goes to the contract; a move the contract refuses is counted,
    and a party left without a valid move is timed out by a third account.
    The winner is read from the contract's state, never decided here.

    Args:
        chain: the deployed contract.
        claimant: the player whose result is disputed.
        challenger: the player who disputes it.
        ops_root: the job's operator root.
        input_state: the job's input leaf.
        bond: the bond each side posts (wei).
        window: the challenge window (seconds).

    Returns:
        The :class:`GameResult`.
    """
    n = claimant.n_layers
    for who in (claimant, challenger):
        chain.fund(who.name, 100 * bond + 10**20)
    root, result, proof = claimant.commitment()
    claim_id = chain.call(claimant.name, claimant.commit_fn, ops_root, input_state, n, root, result, proof, window,
                          value=bond)
    challenger.prepare(claimant)
    c_root, c_result, c_proof = challenger.commitment()
    chain.call(challenger.name, "dispute", claim_id, c_root, c_result, c_proof, value=bond)
    return referee(chain, claim_id, claimant, challenger, gas=chain.last_gas)


def referee(chain: DisputeChain, claim_id: bytes, claimant: Any, challenger: Any, *, gas: int = 0) -> GameResult:
    """Play a running dispute on ``claim_id`` to its end, sending each player's moves to the contract.

    Args:
        chain: the deployed contract.
        claim_id: the disputed claim.
        claimant: the claim's player.
        challenger: the disputing player.
        gas: gas already spent on this dispute (added to the result's).

    Returns:
        The :class:`GameResult`.
    """
    decide_gas, refused = 0, 0
    timeout = chain.view("move_timeout")
    while True:
        state = chain.record("claims", claim_id)["state"]
        if state != _DISPUTED:
            break
        g = chain.record("games", claim_id)
        lo, hi, phase = g["lo"], g["hi"], g["phase"]
        moved = False
        if phase == _ONE_STEP and chain.record("claims", claim_id)["kind"] == _FLOAT32:
            element = challenger.name_element(hi, claimant)
            if element is not None:
                chain.call(challenger.name, "challenge_element", claim_id, *element)
                gas += chain.last_gas
                moved = True
        elif phase == _ELEMENT:
            args = claimant.respond(hi, (g["ei"], g["ej"]))
            if args is not None:
                try:
                    chain.call(claimant.name, "decide_float", claim_id, *args.values())
                    gas += chain.last_gas
                    decide_gas = chain.last_gas
                    moved = True
                except ContractRevert:
                    refused += 1
        elif phase == _ONE_STEP:
            for who in (claimant, challenger):
                args = who.prove_step(hi)
                if args is None:
                    continue
                try:
                    chain.call(who.name, "decide", claim_id, *args.values())
                except ContractRevert:
                    refused += 1
                    continue
                gas += chain.last_gas
                decide_gas = chain.last_gas
                moved = True
                break
        else:
            mover = claimant if phase == 1 else challenger
            for leaves, paths in mover.reveal(list(chain.view("points", claim_id))):
                try:
                    chain.call(mover.name, "reveal", claim_id, leaves, paths)
                except ContractRevert:
                    refused += 1
                    continue
                gas += chain.last_gas
                moved = True
                break
        if not moved:
            chain.advance(timeout)
            chain.fund("referee", 10**18)
            chain.call("referee", "timeout", claim_id)
            gas += chain.last_gas
    g = chain.record("games", claim_id)
    settled = chain.record("claims", claim_id)["state"]
    lo, hi, rounds = g["lo"], g["hi"], g["rounds"]
    if settled == _SLASHED:
        # slashed either because the challenger won, or because nobody proved the last step
        last = chain.last_settled
        winner = "challenger" if last == chain.address(challenger.name) else "none"
    else:
        winner = "claimant"
    how = "step" if decide_gas else ("none" if winner == "none" else "timeout")
    return GameResult(winner, how, rounds, gas, decide_gas, refused, lo, hi)


def _abi_type(entry: dict[str, Any]) -> str:
    """An ABI entry's type string, tuples spelled out for eth_abi."""
    t = entry["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in entry["components"]) + ")" + t[len("tuple"):]
    return t


def _reason(msg: str) -> str:
    """The revert string inside pyrevm's error text (ABI ``Error(string)``), or ``""``."""
    import re

    from eth_abi import decode

    m = re.search(r"output: (?:Bytes\()?0x([0-9a-fA-F]*)", msg)
    if not m:
        return ""
    raw = bytes.fromhex(m.group(1))
    if raw[:4] != bytes.fromhex("08c379a0"):
        return ""
    try:
        return decode(["string"], raw[4:])[0]
    except Exception:  # a malformed revert payload has no reason to report
        return ""
