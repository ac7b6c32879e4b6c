# pragma version ~=0.4.3
"""
@title FloatStep
@notice The float32 last step of Dispute.vy (see Dispute.md, "Float steps"): one output
        element's dot product recomputed on chain, exactly, and each party's claimed
        float32 value checked against the operator's rounding bound
        |z - x.w| <= gamma_n sum |x_t w_t|, gamma_n = n u / (1 - n u), n = k + 2,
        u = 2^-u_bits (Higham's bound for any summation order, FMA or not, plus the
        rounding of both inputs to a u_bits precision), plus the underflow and
        fixed-point slack below. Stateless and pure: Dispute.vy calls it with staticcall.
        The Python mirror is vcompute.verify.dispute.float_trace.within.
"""

MAX_DIM: constant(uint256) = 256
MAX_WORDS: constant(uint256) = 32  # float32 words of one row or column of MAX_DIM (8 lanes a word)
MANT: constant(uint256) = 2**23 - 1
LANE: constant(uint256) = 2**32 - 1
# every term is scaled to units of 2^(L - 300) with L = qtop - HEADROOM: a term is then below
# 2^(48 + HEADROOM), and k <= 256 of them sum below 2^216, so nothing here overflows
HEADROOM: constant(uint256) = 160


@pure
@internal
def _decode(b: uint256) -> (bool, uint256, uint256, bool):
    # float32 bits -> (finite, M, E, negative) with |v| = M 2^(E - 150), subnormals at E = 1
    e: uint256 = (b >> 23) & 255
    f: uint256 = b & MANT
    if e == 255:
        return False, 0, 0, False
    if e == 0:
        return True, f, 1, (b >> 31) & 1 == 1
    return True, f | (MANT + 1), e, (b >> 31) & 1 == 1


@pure
@internal
def _scale(m: uint256, q: uint256, low: uint256) -> uint256:
    # m 2^(q - 300) in units of 2^(low - 300), truncated (less than one unit lost)
    if q >= low:
        return m << (q - low)
    return m >> (low - q)


@pure
@internal
def _close(v: uint256, negative: bool, pos: uint256, neg: uint256, total: uint256, n: uint256, den: uint256,
           slack: uint256) -> bool:
    # |(+-v) - (pos - neg)| * (2^u - n) <= n * total + slack * (2^u - n), all in unsigned words
    a: uint256 = v + neg
    b: uint256 = pos
    if negative:
        a = neg
        b = v + pos
    diff: uint256 = a - b if a >= b else b - a
    return diff * den <= n * total + slack * den


@pure
@internal
def _nan(b: uint256) -> bool:
    return b & 2147483647 > 2139095040


@pure
@external
def within(x: DynArray[uint256, MAX_WORDS], w: DynArray[uint256, MAX_WORDS], k: uint256, u_bits: uint256,
           z: uint256) -> bool:
    """Whether a claimed float32 value (raw bits ``z``) of ``x . w`` is within the operator's bound.

    ``x`` and ``w`` hold k float32 bit patterns, 8 lanes a word, lane t at bits [32t, 32t+32).
    Non-finite inputs follow IEEE: a NaN, an inf times zero or infinite products of both signs make
    the value NaN; infinite products of one sign make it that inf (or NaN, if the finite rest may
    overflow the other way). With finite inputs a finite claim is held to the bound, and an inf passes
    only when the bound lets some summation order overflow with its sign: that sign's terms alone
    reach float32's overflow threshold (2 - 2^-24) 2^127, sum (1 + gamma_n) >= threshold; a NaN only
    when both signs' terms do (inf - inf).
    """
    assert k > 0 and k <= MAX_DIM and k % 8 == 0, "value: k must be a multiple of 8 in 8..MAX_DIM"
    assert len(x) * 8 == k and len(w) * 8 == k, "value: x and w must hold k lanes each"
    assert u_bits >= 10 and u_bits <= 24, "value: u_bits must be in 10..24"
    n: uint256 = k + 2
    den: uint256 = 2**u_bits - n
    ms: uint256[MAX_DIM] = empty(uint256[MAX_DIM])
    qs: uint256[MAX_DIM] = empty(uint256[MAX_DIM])
    sg: bool[MAX_DIM] = empty(bool[MAX_DIM])
    qtop: uint256 = 0
    nan: bool = False
    infs: uint256 = 0  # bit 0: a +inf product, bit 1: a -inf one
    for t: uint256 in range(k, bound=MAX_DIM):
        sh: uint256 = 32 * (t % 8)
        bx: uint256 = (x[t // 8] >> sh) & LANE
        bw: uint256 = (w[t // 8] >> sh) & LANE
        fx: bool = False
        mx: uint256 = 0
        ex: uint256 = 0
        sx: bool = False
        fw: bool = False
        mw: uint256 = 0
        ew: uint256 = 0
        sw: bool = False
        fx, mx, ex, sx = self._decode(bx)
        fw, mw, ew, sw = self._decode(bw)
        if self._nan(bx) or self._nan(bw):
            nan = True
        elif not fx or not fw:
            if (fx and mx == 0) or (fw and mw == 0):
                nan = True  # inf times zero
            else:
                infs |= 1 << convert(sx != sw, uint256)
        else:
            ms[t] = mx * mw
            qs[t] = ex + ew
            sg[t] = sx != sw
            qtop = max(qtop, ex + ew)
    if nan or infs == 3:
        return self._nan(z)
    fc: bool = False
    mc: uint256 = 0
    ec: uint256 = 0
    sc: bool = False
    fc, mc, ec, sc = self._decode(z & LANE)
    if infs != 0 and z & LANE == 2139095040 + ((infs - 1) << 31):
        return True
    if infs != 0 and not self._nan(z):
        return False
    # the claimed value is M 2^(E - 150) = M 2^((E + 150) - 300): the products' frame; a non-finite claim is
    # set against the overflow threshold (2^24 - 1) 2^104, q = 404
    if fc:
        qtop = max(qtop, ec + 150)
    else:
        qtop = max(qtop, 404)
    low: uint256 = 0
    if qtop > HEADROOM:
        low = qtop - HEADROOM
    pos: uint256 = 0
    neg: uint256 = 0
    for t: uint256 in range(k, bound=MAX_DIM):
        v: uint256 = self._scale(ms[t], qs[t], low)
        if sg[t]:
            neg += v
        else:
            pos += v
    # truncation: under one unit per term, for the claimed value and for the total (2k + 2 units);
    # underflow: at most 2^-150 absolute per rounding, 2k roundings (2k 2^(150 - low) units)
    slack: uint256 = 4 * k + 2
    if low < 150:
        slack = 2 * k + 2 + 2 * k * 2**(150 - low)
    if not fc:
        # an inf of one sign needs some order to overflow that way: that sign's terms alone reach the threshold,
        # (sum + truncation) 2^u >= threshold (2^u - n), or an inf product of that sign; a NaN needs both signs
        thr: uint256 = self._scale(2**24 - 1, 404, low) * den
        up: bool = infs & 1 != 0 or (pos + k) * 2**u_bits >= thr
        down: bool = infs & 2 != 0 or (neg + k) * 2**u_bits >= thr
        if self._nan(z):
            return up and down
        if z & LANE == 2139095040:
            return up
        return down
    return self._close(self._scale(mc, ec + 150, low), sc, pos, neg, pos + neg, n, den, slack)
