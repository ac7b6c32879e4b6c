"""The session-8 review's open findings against OperatorGame.vy and its players (proofs/dispute.md, *Open findings*).

Each test asserts what the protocol promises (an honest party never loses; a liar is never paid) on the case the
review built, and is marked ``xfail(strict=True)``: it fails today, for the reason given. A fix makes it pass, and
then strict mode fails the suite until the mark is removed, so a finding cannot be fixed (or regress) silently.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrevm")

from vcompute.ledger.op_dispute import OpChain, play_op  # noqa: E402
from vcompute.verify.dispute import op_step  # noqa: E402
from vcompute.verify.dispute.float_trace import pack_float32, within  # noqa: E402
from vcompute.verify.dispute.op_players import OpPlayer, make_op_player  # noqa: E402
from vcompute.verify.dispute.op_block import MMP, block_op  # noqa: E402
from vcompute.verify.dispute.op_trace import LIN, LN, QK, RELU, SOFTMAX, Operator, OpNet, OpTrace, apply_op  # noqa: E402
from vcompute.verify.dispute.op_validity import adopt_ops, trace_decidable  # noqa: E402

BOND = 10**18


def _b(v) -> int:
    return int(np.array([v], np.float32).view("<u4")[0])


@pytest.fixture(scope="module")
def chain():
    return OpChain(move_timeout=100)


def _play(chain, claimant, challenger, net):
    return play_op(chain, claimant, challenger, ops_root=net.ops_tree.root, input_state=claimant.trace.leaves[0],
                   n_layers=net.n_layers, per_layer=net.per_layer, bond=BOND)


def _ln_job(d=256, rows=8):
    """A LayerNorm of rows alternating +-2^60: the float32 variance sum, d * 2^120 = 2^128, overflows."""
    net = OpNet((Operator(LN, d, d, 18, np.stack([np.ones(d, np.float32), np.zeros(d, np.float32)])),), rows=rows)
    return net, np.tile(np.array([2.0**60, -2.0**60] * (d // 2), np.float32), (rows, 1))


def test_f2_an_honest_claimant_does_not_lose_a_layernorm_whose_variance_overflows(chain):
    net, x0 = _ln_job()
    honest = make_op_player("honest", net, x0, seed=0, name="f2h")
    exact = np.where(x0 > 0, np.float32(1), np.float32(-1)).astype(np.float32)  # what the contract's rule wants
    ct = OpTrace(net, x0, [(x0, exact)])
    # fixed: 2^60 is beyond the tame bound (2^48), so the elements are re-checked and the honest claimant refuses
    assert not trace_decidable(honest.trace) and not honest.will_claim()
    # the game it would have played (before the fix it committed, and lost to the exact values)
    r = _play(chain, honest, OpPlayer("f2c", "lie_one", ct, ct), net)
    assert r.winner == "challenger"


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="F3 open: the players name and prove only the claimant's element, never check their own; "
                          "where the honest value is outside the contract's rule a liar makes it end nobody-won")
def test_f3_an_honest_challenger_keeps_its_bond_against_a_liar(chain):
    net, x0 = _ln_job()
    h = make_op_player("honest", net, x0, seed=0, name="f3h")
    lie = h.trace.state(1)[1].copy()
    lie[0, 0] = 5.0
    liar = OpPlayer("f3l", "lie_one", OpTrace(net, x0, [(x0, lie)]), h.trace)
    r = _play(chain, liar, make_op_player("honest", net, x0, seed=0, name="f3c"), net)
    assert r.winner == "challenger", r


def test_f4_a_dot_product_overflow_keeps_its_sign(chain):
    # fixed: any inf or NaN passed once the absolute sum reached overflow
    x, w = np.full(8, 2.0**125, np.float32), np.ones(8, np.float32)
    assert chain.view("within", pack_float32(x), pack_float32(w), 8, 24, 0x7F800000, on="float_step")
    for z in (0xFF800000, 0x7FC00000):  # -inf, NaN
        assert not within(x, w, 24, [z])[0]
        assert not chain.view("within", pack_float32(x), pack_float32(w), 8, 24, z, on="float_step")


def test_f4_an_honest_challenger_disputes_a_flipped_overflow(chain):
    # fixed: the honest challenger adopted a trace with one overflowed lin output flipped to -inf, and a challenger
    # naming that element lost
    net = OpNet((Operator(LIN, 8, 8, 24, np.ones((8, 8), np.float32)), Operator(RELU, 8, 8, 0)), rows=8)
    x0 = np.full((8, 8), 2.0**125, np.float32)
    honest = make_op_player("honest", net, x0, seed=0, name="f4h")
    s1 = honest.trace.state(1)
    lie = s1[1].copy()
    lie[0, 0] = -np.inf
    lt = OpTrace(net, x0, [(s1[0], lie), apply_op(net.op(2), (s1[0], lie))])
    assert adopt_ops(lt).leaves[-1] != lt.leaves[-1]

    class Namer(OpPlayer):
        def name_element(self, hi, claimant):
            return (0, 0)

    r = _play(chain, OpPlayer("f4l", "lie_one", lt, honest.trace), Namer("f4c", "lie_one", honest.trace, honest.trace),
              net)
    assert r.winner == "challenger", r


def test_f5_an_operator_whose_weights_disagree_with_its_leaf_is_the_posters_error():
    # fixed: a lin leaf of m = 16 over a 16 x 8 weight used to be committed; its honest output has 8 lanes, its
    # decide reverted and the honest claimant was timed out
    with pytest.raises(ValueError, match="shape"):
        Operator(LIN, 16, 16, 24, np.ones((16, 8), np.float32))
    Operator(LIN, 16, 8, 24, np.ones((16, 8), np.float32))  # the operator it is

    class Liar(np.ndarray):  # a hostile array that reports the shape the leaf wants
        @property
        def shape(self):
            return (16, 16)

    with pytest.raises(ValueError, match="shape"):
        Operator(LIN, 16, 16, 24, np.ones((16, 8), np.float32).view(Liar))


def test_f5_a_parameter_that_does_not_round_trip_through_its_leaf_is_the_posters_error():
    # fixed: a softmax block with bit 31 set carried into the span (the chain read span 15, block 1)
    with pytest.raises(ValueError, match="round-trip"):
        Operator(SOFTMAX, 16, 16, 18, (2**31 + 1, False, 14))
    with pytest.raises(ValueError, match="tokens < 2"):
        Operator(QK, 16, 16, 24, (2, 2**32))
    with pytest.raises(ValueError, match="shape"):  # a width-1 P, which numpy would broadcast
        Operator(MMP, 16, 16, block_op(MMP, width=16, rows=8, r0=0, rn=8, o=0, m=8, n=8,
                                       param=np.ones((8, 8), np.float32)).bits, np.ones((8, 1), np.float32))
    assert Operator(SOFTMAX, 16, 16, 18, (2**31 - 1, True, 14)).param_root()


def test_the_mirrors_agree_with_the_contract_on_the_reviewed_overflow_cases(chain):
    # what the review found sound, kept: the axpby mirror and block_ok agree (both reject numpy's +inf of
    # 2 * 2^127 + 1 * -2^127, accept 2^127 and NaN): the open question there is the rule, not the mirror
    args = (_b(2.0), _b(2.0**127), _b(1.0), _b(-2.0**127))
    assert not op_step.axpby_within(*args, 0x7F800000, 22)
    assert op_step.axpby_within(*args, _b(2.0**127), 22) and op_step.axpby_within(*args, 0x7FC00000, 22)
