"""Settlement's trusted memory:// path moves exactly what the public ledger methods move."""

from __future__ import annotations

import numpy as np
import pytest

import vcompute.ledger as vl
from vcompute.market.settlement import Settlement


class _Public(Settlement):
    """The same accounts, every operation through the ledger's public methods."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._mem = None


def _script(s: Settlement, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    names = ["c0", "c1", "p0", "p1", "p2", "aud"]
    for i, n in enumerate(names):
        s.open_account(n, int(rng.integers(0, 3000)) if n != "aud" else 0)
    for p in ("p0", "p1", "p2"):
        out.append(s.deposit_stake(p, int(rng.integers(0, 2500))))
    opened = []
    for j in range(60):
        op = int(rng.integers(0, 6))
        c, p = f"c{rng.integers(0, 2)}", f"p{rng.integers(0, 3)}"
        if op <= 1 or not opened:
            eid = f"j{j}"
            ok = s.open_job(eid, c, p, amount=int(rng.integers(1, 400)), deadline=float(rng.uniform(1, 9)),
                            stake=int(rng.integers(0, 600)))
            out.append(ok)
            if ok:
                opened.append(eid)
        elif op == 2:
            out.append(s.release(opened.pop(0)))
        elif op == 3:
            eid = opened.pop(0)
            locked = s.locked(eid)
            s.slash(eid, locked // 3, "aud")
            s.slash(eid, locked - locked // 3, "c0")
            out.append(s.refund(eid))
        elif op == 4:
            out.append(s.transfer(c, p, int(rng.integers(0, 700))))
        else:
            out.append(s.refund(opened.pop(0)))
    out.append(s.check())
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_trusted_path_moves_what_the_public_path_moves(seed):
    fast, slow = Settlement("memory://", clock=lambda: 0.0), _Public("memory://", clock=lambda: 0.0)
    assert fast._mem is not None
    assert _script(fast, seed) == _script(slow, seed)
    assert fast.ledger.state.rows() == slow.ledger.state.rows()
    assert fast.ledger.op_counts() == slow.ledger.op_counts() and fast.ops == slow.ops


@pytest.mark.parametrize("cls", [Settlement, _Public])
def test_hostile_arguments_take_the_checked_path(cls):
    class Odd(str):  # equal to every name: as an escrow id it would be every escrow
        def __eq__(self, o): return True
        __hash__ = str.__hash__

    class Big(int):
        def __gt__(self, o): return True

    s = cls("memory://", clock=lambda: 0.0)
    for n, amt in (("c", 500), ("p", 500)):
        s.open_account(n, amt)
    s.deposit_stake("p", 100)
    assert s.open_job("j", "c", "p", amount=50, deadline=3.0, stake=10)
    before = s.ledger.state.rows()
    with pytest.raises(vl.InvalidRequest, match="escrow_id"):
        s.open_job(Odd("j2"), "c", "p", amount=5, deadline=3.0, stake=1)
    with pytest.raises(vl.InvalidRequest, match="escrow_id"):
        s.release(Odd("j"))
    with pytest.raises(vl.InvalidRequest):
        s.open_job("j3", "c", "p", amount=5, deadline=float("nan"), stake=1)
    with pytest.raises(vl.UnknownAccount):  # not an account of this ledger
        s.open_job("j4", "c", "mallory", amount=5, deadline=3.0, stake=1)
    assert s.ledger.state.rows() == before
    assert s.transfer("c", "p", Big(10**30)) == 450  # int() of it, capped at the balance
    assert s.check() == 1000


@pytest.mark.parametrize("cls", [Settlement, _Public])
def test_a_name_that_lies_in_comparisons_never_reaches_the_ledger_rules(cls):
    class Sly(str):  # the provider's name in a dict lookup, another name in the rule "never to the provider"
        calls = 0

        def __eq__(self, o):
            Sly.calls += 1
            return Sly.calls != 2

        __hash__ = str.__hash__

    s = cls("memory://", clock=lambda: 0.0)
    for n, amt in (("c", 500), ("p", 500), ("aud", 0)):
        s.open_account(n, amt)
    s.deposit_stake("p", 100)
    assert s.open_job("j", "c", "p", amount=50, deadline=3.0, stake=40)
    before = s.ledger.state.rows()
    for bad in (lambda: s.slash("j", 40, Sly("p")), lambda: s.transfer("c", Sly("p"), 5),
                lambda: s.open_job("j2", "c", Sly("p"), amount=5, deadline=3.0, stake=1)):
        Sly.calls = 0
        with pytest.raises(vl.InvalidRequest, match="exactly str|must be"):
            bad()
    assert s.ledger.state.rows() == before
