"""Matching jobs to idle providers: a posted-price order book and a reverse auction.

Both keep the same book of idle providers and differ in how a winner is
picked and what it is paid:

- :class:`PostedPrice` (Golem's offers, Akash's order book): each provider
  posts a price per PFLOP; the job goes to the idle provider with the lowest
  ``price / reputation**w`` that fits, at its posted price.
- :class:`ReverseAuction` (Akash's bids): ``bidders`` idle providers are
  invited; each bids its cost plus a shaded markup; the lowest acceptable
  score wins and is paid its own bid (first price).

A matcher is pluggable: anything with ``add``, ``remove``, ``pick`` and
``in`` (the :class:`~vcompute.market.core.Matcher` protocol; see :data:`MATCHERS`).
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from vcompute.core.registry import Registry

__all__ = ["MATCHERS", "IdleBook", "PostedPrice", "ReverseAuction"]

#: Matchers by name (entry-point group ``vcompute.matchers``).
MATCHERS: Registry = Registry("matcher", group="vcompute.matchers")


class IdleBook:
    """The set of idle providers with O(1) add, remove and random access."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, p: Any) -> bool:
        return p.idx in self.pos

    def add(self, p: Any) -> None:
        """Add provider ``p`` (no-op if present)."""
        if p.idx not in self.pos:
            self.pos[p.idx] = len(self.items)
            self.items.append(p)

    def remove(self, p: Any) -> None:
        """Remove provider ``p`` (no-op if absent); swaps the last entry into its slot."""
        i = self.pos.pop(p.idx, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last.idx] = i


def _score(price: float, rep: float, w: float) -> float:
    return price if w == 0 else price / max(rep, 1e-6) ** w


class PostedPrice:
    """Cheapest idle posted price (reputation-weighted) wins, paid its posted price.

    Offers sit in one heap per memory size, so a job needing 40 GB never
    walks past the idle 24 GB cards.

    Args:
        reputation_weight: exponent ``w`` of the reputation in the score.

    Example:
        >>> from types import SimpleNamespace as P
        >>> m = PostedPrice()
        >>> for i, price in enumerate([3.0, 1.0, 2.0]):
        ...     m.add(P(idx=i, price=price, reputation=1.0, memory_gb=80))
        >>> [(p.idx, q) for p, q in m.pick(2, memory_gb=8, rng=None, max_price=10)]
        [(1, 1.0), (2, 2.0)]
    """

    def __init__(self, *, reputation_weight: float = 0.0, **_: Any) -> None:
        self.w = float(reputation_weight)
        self.book = IdleBook()
        self._heaps: dict[float, list[tuple[float, int, int, Any]]] = {}
        self._ver: dict[int, int] = {}
        self._fits: dict[float, list[list]] = {}  # per job memory: the heaps of the cards it fits on

    def __len__(self) -> int:
        return len(self.book)

    def __contains__(self, p: Any) -> bool:
        return p in self.book

    def add(self, p: Any) -> None:
        """Post ``p``'s offer (its score is fixed until it is picked or removed)."""
        idx, book = p.idx, self.book
        if idx in book.pos:
            return
        book.pos[idx] = len(book.items)  # IdleBook.add, inline (once per job)
        book.items.append(p)
        ver = self._ver.get(idx, 0) + 1
        self._ver[idx] = ver  # older entries of p in the heaps are now stale
        heap = self._heaps.get(p.memory_gb)
        if heap is None:
            heap = self._heaps[p.memory_gb] = []
            self._fits.clear()
        w = self.w
        # _score, inline (once per job)
        heapq.heappush(heap, (p.price if w == 0 else p.price / max(p.reputation, 1e-6) ** w, idx, ver, p))

    def remove(self, p: Any) -> None:
        """Withdraw ``p``'s offer (its heap entry is dropped lazily)."""
        self.book.remove(p)

    def _top(self, heap: list) -> tuple | None:
        pos, ver = self.book.pos, self._ver
        while heap:
            e = heap[0]
            if e[1] in pos and ver[e[1]] == e[2]:
                return e
            heapq.heappop(heap)
        return None

    def pick(self, k: int, *, memory_gb: float, rng: np.random.Generator | None,
             max_price: float) -> list[tuple[Any, float]] | None:
        """The ``k`` best idle offers that fit, with the price each is paid, or None.

        Providers returned are removed from the book; none are if fewer than
        ``k`` acceptable offers exist.
        """
        heaps = self._fits.get(memory_gb)
        if heaps is None:
            heaps = self._fits[memory_gb] = [h for mem, h in self._heaps.items() if mem >= memory_gb]
        if k == 1 and self.w == 0:
            # One offer by price alone (every match of a job's primary): the loop below with its
            # bookkeeping lists left out. The same winner: the least (score, idx) of the heads;
            # a head dearer than max_price means every offer is (the loop pops and pushes it
            # back; heap order depends only on the entries, all distinct in (score, idx, ver)).
            pos, vers = self.book.pos, self._ver
            best = best_heap = None
            for h in heaps:
                while h:  # self._top(h), inline
                    e = h[0]
                    i = e[1]
                    if i in pos and vers[i] == e[2]:
                        if best is None or e[0] < best[0] or (e[0] == best[0] and i < best[1]):
                            best, best_heap = e, h
                        break
                    heapq.heappop(h)
            if best is None:
                return None
            p = best[3]
            price = p.price
            if price > max_price:
                return None
            heapq.heappop(best_heap)
            self.book.remove(p)
            return [(p, price)]
        chosen: list[tuple] = []
        aside: list[tuple[list, tuple]] = []
        top = self._top
        while len(chosen) < k:
            best, best_heap = None, None
            for h in heaps:
                e = top(h)
                if e is not None and (best is None or e[0] < best[0] or (e[0] == best[0] and e[1] < best[1])):
                    best, best_heap = e, h
            if best is None:
                break
            heapq.heappop(best_heap)
            if best[3].price > max_price:
                aside.append((best_heap, best))
                if self.w == 0:
                    break  # ordered by price: every other offer is dearer too
                continue
            chosen.append((best_heap, best))
        for h, e in aside:
            heapq.heappush(h, e)
        if len(chosen) < k:
            for h, e in chosen:
                heapq.heappush(h, e)
            return None
        for _, e in chosen:
            self.book.remove(e[3])
        return [(e[3], e[3].price) for _, e in chosen]


class ReverseAuction:
    """A first-price reverse auction among ``bidders`` sampled idle providers.

    Each invited provider bids ``cost * (1 + markup * (1 - shading * u))``
    per PFLOP with ``u ~ U(0, 1)``: bidders undercut their posted markup to
    win. The ``k`` lowest ``bid / reputation**w`` that fit and are at most
    ``max_price`` win, each paid its own bid.

    Args:
        bidders: providers invited per auction.
        reputation_weight: exponent ``w`` of the reputation in the score.
        bid_shading: the largest share of its markup a bidder gives up.
    """

    def __init__(self, *, bidders: int = 8, reputation_weight: float = 0.0, bid_shading: float = 0.5,
                 **_: Any) -> None:
        self.bidders = int(bidders)
        self.w = float(reputation_weight)
        self.shading = float(bid_shading)
        self.book = IdleBook()

    def __len__(self) -> int:
        return len(self.book)

    def __contains__(self, p: Any) -> bool:
        return p in self.book

    def add(self, p: Any) -> None:
        """Make ``p`` available for auctions."""
        self.book.add(p)

    def remove(self, p: Any) -> None:
        """Take ``p`` out of the idle book."""
        self.book.remove(p)

    def pick(self, k: int, *, memory_gb: float, rng: np.random.Generator,
             max_price: float) -> list[tuple[Any, float]] | None:
        """Run one auction; the ``k`` winners (removed from the book) with their bids, or None."""
        items = self.book.items
        n = len(items)
        if n < k:
            return None
        m = min(max(self.bidders, k), n)
        idx = _sample(rng, n, m)
        u = rng.random(m)
        bids = []
        for j, i in enumerate(idx):
            p = items[int(i)]
            if p.memory_gb < memory_gb:
                continue
            bid = p.cost_per_pflop * (1.0 + p.markup * (1.0 - self.shading * float(u[j])))
            if bid <= max_price:
                bids.append((_score(bid, p.reputation, self.w), p.idx, p, bid))
        if len(bids) < k:
            return None
        bids.sort(key=lambda b: (b[0], b[1]))
        won = bids[:k]
        for b in won:
            self.book.remove(b[2])
        return [(b[2], b[3]) for b in won]


def _sample(rng: np.random.Generator, n: int, m: int) -> list[int]:
    """``m`` distinct indices of ``range(n)`` in draw order (``rng.choice`` permutes all ``n``)."""
    if m >= n:
        return list(range(n))
    if 4 * m > n:
        return rng.choice(n, size=m, replace=False).tolist()
    seen: dict[int, None] = {}
    while len(seen) < m:
        for i in rng.integers(0, n, size=2 * m).tolist():
            seen.setdefault(i)
            if len(seen) == m:
                break
    return list(seen)


MATCHERS.register("posted", PostedPrice)
MATCHERS.register("auction", ReverseAuction)
