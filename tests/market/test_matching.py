"""Posted-price order book and reverse auction."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from vcompute.market.matching import PostedPrice, ReverseAuction


def _prov(i, price, mem=80, rep=1.0, cost=None, markup=0.3):
    return SimpleNamespace(idx=i, price=price, memory_gb=mem, reputation=rep,
                           cost_per_pflop=cost if cost is not None else price / 1.3, markup=markup)


def test_posted_price_picks_cheapest_that_fits_and_respects_max_price():
    m = PostedPrice(reputation_weight=0.0)
    ps = [_prov(0, 1.0, mem=16), _prov(1, 2.0), _prov(2, 3.0), _prov(3, 9.0)]
    for p in ps:
        m.add(p)
    got = m.pick(1, memory_gb=40, rng=None, max_price=5.0)
    assert [(p.idx, q) for p, q in got] == [(1, 2.0)]
    assert m.pick(3, memory_gb=40, rng=None, max_price=5.0) is None  # only p2 left under 5
    assert len(m) == 3  # a failed pick gives everyone back
    got = m.pick(1, memory_gb=8, rng=None, max_price=5.0)
    assert got[0][0].idx == 0


def test_posted_price_weighs_reputation():
    m = PostedPrice(reputation_weight=1.0)
    m.add(_prov(0, 1.0, rep=0.1))   # cheap but caught cheating
    m.add(_prov(1, 2.0, rep=0.9))
    assert m.pick(1, memory_gb=1, rng=None, max_price=10)[0][0].idx == 1


def test_removed_offers_are_not_picked():
    m = PostedPrice(reputation_weight=0.0)
    a, b = _prov(0, 1.0), _prov(1, 2.0)
    m.add(a); m.add(b); m.remove(a)
    assert m.pick(1, memory_gb=1, rng=None, max_price=10)[0][0].idx == 1
    assert m.pick(1, memory_gb=1, rng=None, max_price=10) is None


def test_auction_lowest_bid_wins_and_is_reproducible():
    def run(seed):
        m = ReverseAuction(bidders=4, reputation_weight=0.0, bid_shading=0.5)
        for i in range(20):
            m.add(_prov(i, 1.0 + i / 10, cost=1.0 + i / 10))
        return [(p.idx, q) for p, q in m.pick(2, memory_gb=1, rng=np.random.default_rng(seed), max_price=100)]

    assert run(3) == run(3)
    won = run(3)
    assert len(won) == 2 and won[0][1] <= won[1][1]
    for p_idx, bid in won:  # a bid lies between cost and posted price
        cost = 1.0 + p_idx / 10
        assert cost * (1 + 0.3 * 0.5) - 1e-12 <= bid <= cost * 1.3 + 1e-12


def test_auction_needs_enough_bidders():
    m = ReverseAuction(bidders=4)
    m.add(_prov(0, 1.0))
    assert m.pick(2, memory_gb=1, rng=np.random.default_rng(0), max_price=10) is None
