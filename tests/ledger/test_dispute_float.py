"""Float32 last steps of protocols/Dispute.vy (FloatStep.vy) against the float players on revm
(protocols/Dispute.md, "Float steps"; proofs/dispute.md C6, C7)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.dispute_client import ContractRevert, DisputeChain, play  # noqa: E402
from vcompute.ledger.dispute_escrow import play_job  # noqa: E402
from vcompute.verify.dispute.float_players import FLOAT_LYING, make_float_player  # noqa: E402
from vcompute.verify.dispute.float_trace import FloatNet, float_job_id, pack_float32, within  # noqa: E402
from vcompute.verify.dispute.players import make_player  # noqa: E402
from vcompute.verify.dispute.trace import QuantNet  # noqa: E402

BOND = 10**18
MOVE = 100


@pytest.fixture(scope="module")
def job():
    net = FloatNet.random(dims=(32,) * 6, rows=2, seed=0)
    return net, net.random_input(seed=1)


@pytest.fixture(scope="module")
def chain():
    return DisputeChain(move_timeout=MOVE)


def _bits(v) -> int:
    return int(np.array([v], dtype=np.float32).view("<u4")[0])


def _claims(rng, x, w, u_bits):
    """Claimed values around the bound: exact, inside, just outside, far off, non-finite, signed zero."""
    exact = float(x.astype(np.float64) @ w.astype(np.float64))
    n, u = x.size + 2, 2.0 ** -u_bits
    bound = n * u / (1 - n * u) * float(np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)))
    out = [exact, exact + 0.5 * bound, exact - 0.999 * bound, exact + 1.001 * bound, exact - 1.5 * bound,
           exact * 2 + 1, 0.0, -0.0, np.inf, np.nan, float(np.float32(exact) + rng.standard_normal() * bound)]
    return [_bits(v) for v in out]


def test_the_python_mirror_decides_exactly_as_the_contract(chain):
    """within() is what FloatStep.vy computes, on values at and around the bound, subnormals and extremes."""
    rng = np.random.default_rng(0)
    cases, seen = 0, set()
    for trial in range(24):
        k = int(rng.choice([8, 16, 64, 256]))
        u_bits = int(rng.choice([24, 11]))
        scale = float(rng.choice([1.0, 1e-20, 1e20, 1e-40]))
        x = (rng.standard_normal(k) * scale).astype(np.float32)
        w = rng.standard_normal(k).astype(np.float32)
        if trial % 6 == 0:
            x[: k // 2] = 0
        zs = _claims(rng, x, w, u_bits)
        for z, mine in zip(zs, within(x, w, u_bits, zs)):
            assert chain.view("within", pack_float32(x), pack_float32(w), k, u_bits, z, on="float_step") == mine, \
                (trial, z)
            cases += 1
            seen.add(mine)
    assert cases > 200 and seen == {True, False}


def test_the_mirror_decides_each_value_alone_as_one_contract_call(chain):
    """A large value decided beside a small one must not coarsen the small one's fixed-point frame."""
    x, w = np.full(8, 1e-20, np.float32), np.ones(8, np.float32)
    wrong, huge, right = _bits(5e-20), _bits(3e38), _bits(float(np.float32(1e-20) * 8))
    for zs in ([wrong], [wrong, huge], [huge, wrong, right], [right, _bits(np.nan), wrong]):
        got = within(x, w, 24, zs)
        assert got == [within(x, w, 24, [z])[0] for z in zs]
        assert got == [chain.view("within", pack_float32(x), pack_float32(w), 8, 24, z, on="float_step") for z in zs]
    assert within(x, w, 24, [wrong, huge, right]) == [False, False, True]


def test_a_non_finite_input_is_decided_by_ieee(chain):
    """inf . ones = inf exactly; a finite claim, the other inf or a NaN is out (proofs/dispute.md, "Non-finite values")."""
    x, w = np.ones(8, np.float32), np.ones(8, np.float32)
    x[3] = np.inf
    zs = [_bits(np.inf), _bits(-np.inf), _bits(np.nan), 0, _bits(3e38)]
    assert within(x, w, 24, zs) == [True, False, False, False, False]
    assert [chain.view("within", pack_float32(x), pack_float32(w), 8, 24, z, on="float_step") for z in zs] == \
        [True, False, False, False, False]


def _play(net, x0, a, b, *, seed=3, chain=None):
    chain = chain or DisputeChain(move_timeout=MOVE)
    p = make_float_player(a, net, x0, seed=seed, name="claimant")
    q = make_float_player(b, net, x0, seed=seed + 1, name="challenger")
    return chain, play(chain, p, q, ops_root=net.ops_tree.root, input_state=p.honest_trace.leaves[0], bond=BOND)


@pytest.mark.parametrize("seed", [3, 8])
@pytest.mark.parametrize("liar", FLOAT_LYING)
def test_an_honest_float_claimant_beats_every_liar(job, liar, seed):
    net, x0 = job
    chain, r = _play(net, x0, "honest", liar, seed=seed)
    assert r.winner == "claimant"
    assert chain.contract_balance() == chain.view("held") + chain.view("burned")


@pytest.mark.parametrize("seed", [3, 8])
@pytest.mark.parametrize("liar", FLOAT_LYING)
def test_an_honest_float_challenger_beats_every_lying_claimant(job, liar, seed):
    net, x0 = job
    _, r = _play(net, x0, liar, "honest", seed=seed)
    assert r.winner == "challenger"
    if liar.startswith("lie_"):  # the others are refused or absent before the last step
        assert r.how == "step"


def test_a_valid_result_with_other_bits_wins_and_is_never_disputed(job):
    """Another machine's float32 bits (within the bound everywhere): as a griefing challenger it loses the
    game, the honest claimant opening whatever element it names; as a claimant the honest challenger adopts it."""
    net, x0 = job
    _, r = _play(net, x0, "honest", "drift")
    assert r.winner == "claimant" and r.how == "step"
    drift = make_float_player("drift", net, x0, seed=5, name="claimant")
    honest = make_float_player("honest", net, x0, seed=0, name="challenger")
    assert drift.trace.leaves[-1] != honest.trace.leaves[-1]
    honest.prepare(drift)
    assert honest.trace.leaves == drift.trace.leaves  # nothing to dispute


def _to_last_step(chain, net, claimant, challenger):
    for p in (claimant, challenger):
        chain.fund(p.name, 10 * BOND)
    cid = chain.call(claimant.name, "commit_float", net.ops_tree.root, claimant.honest_trace.leaves[0],
                     net.n_layers, *claimant.commitment(), 1000, value=BOND)
    challenger.prepare(claimant)
    chain.call(challenger.name, "dispute", cid, *challenger.commitment(), value=BOND)
    while chain.record("games", cid)["phase"] < 3:
        g = chain.record("games", cid)
        mover = claimant if g["phase"] == 1 else challenger
        chain.call(mover.name, "reveal", cid, *mover.reveal(list(chain.view("points", cid)))[0])
    return cid, chain.record("games", cid)["hi"]


def test_decide_float_refuses_forged_openings(job):
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    liar = make_float_player("lie_one", net, x0, seed=4, name="l")
    honest = make_float_player("honest", net, x0, seed=0, name="h")
    cid, hi = _to_last_step(chain, net, liar, honest)
    with pytest.raises(ContractRevert, match="value: float claim; call decide_float"):
        chain.call("h", "decide", cid, 1, 32, 32, 0, [0], [0] * 32, [0] * 4, [0], b"\x00" * 32, [])
    with pytest.raises(ContractRevert, match="state: no element has been named"):
        chain.call("l", "decide_float", cid, *liar.respond(hi, (0, 0)).values())
    with pytest.raises(ContractRevert, match="unauthorized: the challenger names"):
        chain.call("l", "challenge_element", cid, 0, 0)
    element = honest.name_element(hi, liar)
    chain.call("h", "challenge_element", cid, *element)
    with pytest.raises(ContractRevert, match="state: no float step"):
        chain.call("h", "challenge_element", cid, 0, 0)
    # the liar's own opening of its out-of-bound element is honest data: forging any part is refused
    good = liar.respond(hi, element)
    cases = [("x_row", lambda v: [v[0] ^ 1, *v[1:]], "value: x_row opening"),
             ("x_root", lambda v: b"\x01" * 32, "value: x is not agreed"),
             ("w_col", lambda v: [v[0] ^ 1, *v[1:]], "value: w_col opening"),
             ("u_bits", lambda v: 11, "value: w is not the operator"),
             ("m", lambda v: v + 8, "value: w is not the operator"),
             ("c_row", lambda v: [v[0] ^ 1, *v[1:]], "value: c_row opening"),
             ("c_root", lambda v: b"\x02" * 32, "value: not the claimant's output")]
    for key, fix, reason in cases:
        bad = dict(good)
        bad[key] = fix(bad[key])
        with pytest.raises(ContractRevert) as e:
            chain.call("l", "decide_float", cid, *bad.values())
        assert e.value.reason.startswith(reason), (key, e.value.reason)
    chain.call("l", "decide_float", cid, *good.values())  # opened faithfully: out of bound, the liar loses
    assert chain.record("claims", cid)["state"] == 4 and chain.view("winner", cid) == chain.address("h")


def test_an_element_outside_the_output_and_an_unopened_element(job):
    """A griefer naming an element the output lacks loses; a claimant that opens nothing loses."""
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    honest = make_float_player("honest", net, x0, seed=0, name="h")
    griefer = make_float_player("drift", net, x0, seed=1, name="g")
    cid, hi = _to_last_step(chain, net, honest, griefer)
    chain.call("g", "challenge_element", cid, 0, 10**6)
    chain.call("anyone", "decide_float", cid, *honest.respond(hi, (0, 10**6)).values())
    assert chain.record("claims", cid)["state"] == 1  # the claim stands
    liar = make_float_player("lie_last", net, x0, seed=2, name="l")
    watcher = make_float_player("honest", net, x0, seed=0, name="w")
    cid, hi = _to_last_step(chain, net, liar, watcher)
    chain.call("w", "challenge_element", cid, *watcher.name_element(hi, liar))
    chain.advance(MOVE)
    chain.call("anyone", "timeout", cid)
    assert chain.view("winner", cid) == chain.address("w")


class _Junk:
    """A claimant's trace whose committed leaf at the last layer is not its delivered state."""

    def __init__(self, trace, leaf):
        self._t, self._leaf = trace, leaf

    def __getattr__(self, name):
        return getattr(self._t, name)

    @property
    def leaves(self):
        return [*self._t.leaves[:-1], self._leaf]

    @property
    def tree(self):
        from vcompute.core.merkle import MerkleTree

        return MerkleTree(self.leaves)


@pytest.mark.parametrize("how", ["random bytes", "another shape"])
def test_a_claimant_whose_committed_state_cannot_be_opened_loses(job, how):
    """Before: the honest challenger had to open the claimant's output; a leaf with no preimage (or of
    another shape) could not be opened, and the float timeout gave the claimant the win. Now the claimant
    must open it."""
    from vcompute.verify.dispute.float_trace import float_state_leaf

    net, x0 = job
    liar = make_float_player("honest", net, x0, seed=0, name="l")
    y = liar.trace.states[-1]
    leaf = b"\x13" * 32 if how == "random bytes" else float_state_leaf(np.concatenate([y, y[:, :8]], axis=1))
    liar.trace = _Junk(liar.trace, leaf)
    liar.strategy = "lie_last"
    watcher = make_float_player("honest", net, x0, seed=0, name="w")
    chain, r = DisputeChain(move_timeout=MOVE), None
    r = play(chain, liar, watcher, ops_root=net.ops_tree.root, input_state=watcher.honest_trace.leaves[0], bond=BOND)
    assert r.winner == "challenger" and r.refused == 1 and r.hi == net.n_layers


def test_the_kinds_cannot_pass_for_each_other(job):
    """A float job id differs from an int8 one on the same roots; decide_float refuses an int8 claim."""
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    leaf = make_float_player("honest", net, x0, seed=0).trace.leaves[0]
    assert chain.view("float_job_id_of", net.ops_tree.root, leaf, 5) == float_job_id(net.ops_tree.root, leaf, 5)
    assert chain.view("float_job_id_of", net.ops_tree.root, leaf, 5) != chain.view("job_id_of", net.ops_tree.root,
                                                                                   leaf, 5)
    qnet = QuantNet.random(dims=(32, 32), rows=1, seed=0)
    qx = qnet.random_input(seed=0)
    h, l = make_player("honest", qnet, qx, seed=0, name="h"), make_player("lie_one", qnet, qx, seed=1, name="l")
    for who in ("h", "l"):
        chain.fund(who, 10 * BOND)
    cid = chain.call("l", "commit", qnet.ops_tree.root, h.trace.leaves[0], 1, *l.commitment(), 1000, value=BOND)
    chain.call("h", "dispute", cid, *h.commitment(), value=BOND)
    with pytest.raises(ContractRevert, match="state: no float step to challenge"):
        chain.call("h", "challenge_element", cid, 0, 0)
    with pytest.raises(ContractRevert, match="state: no element has been named"):
        chain.call("h", "decide_float", cid, 0, 0, 0, 0, [], b"\x00" * 32, [], [], b"\x00" * 32, [], [], [],
                   b"\x00" * 32, [])


def test_a_lying_float_provider_loses_its_escrowed_stake(job):
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    p = make_float_player("lie_edge", net, x0, seed=2, name="provider")
    w = make_float_player("honest", net, x0, seed=0, name="watcher")
    out = play_job(chain, p, w, ops_root=net.ops_tree.root, input_state=w.honest_trace.leaves[0],
                   payment=BOND, stake=BOND, bond=BOND, challenge_window=1000)
    assert out.game.winner == "challenger" and out.job_state == "slashed"
    assert out.escrow_credits["watcher"] == BOND - BOND // 10 and out.escrow_credits["consumer"] == BOND


@pytest.mark.parametrize("liar", ["skip", "lie_one", "lie_edge"])
def test_a_training_transcript_is_bisected_to_one_sgd_step(liar):
    """A linear model's training checkpoints as the trace: a lazy trainer that skips a step, or lies in one
    weight, loses in both roles; the game ends on the step it faked."""
    from vcompute.verify.dispute.train_trace import linear_training_job

    net, s0 = linear_training_job(steps=9, features=24, targets=8, batch=16, eta=0.05, seed=2)
    for honest_claims in (True, False):
        h = make_float_player("honest", net, s0, seed=0, name="h")
        c = make_float_player(liar, net, s0, seed=5, name="c")
        a, b = (h, c) if honest_claims else (c, h)
        r = play(DisputeChain(move_timeout=MOVE), a, b, ops_root=net.ops_tree.root, input_state=h.trace.leaves[0],
                 bond=BOND)
        assert r.winner == ("claimant" if honest_claims else "challenger") and r.how == "step"
        if not honest_claims:
            faked = [l for l in range(1, 10) if c.trace.leaves[l] != h.trace.leaves[l]][0]
            assert r.hi == faked
