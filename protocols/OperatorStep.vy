# pragma version ~=0.4.3
"""
@title OperatorStep
@notice The elementwise and row last steps of OperatorGame.vy (see OperatorGame.md): one float32
        output element of an add (bias or residual) or of a tanh-form GELU, checked against
        a bound from a rounding model. add: |z - (a + b)| <= 2^-u |a + b|; gelu:
        |z - g(x)| <= 2^-t (|x| + |g(x)|), g computed here in 64-bit fixed point
        (g = x sigma(2y), y = sqrt(2/pi)(x + 0.044715 x^3)); layernorm: one element of
        gamma (x - mean) / sqrt(var + eps) + beta, the row's statistics in exact integers and
        an integer square root, |z - ref| <= 2^-t (|gamma| (|n| + max|x| / sigma) + |beta|);
        relu: z = max(0, x) exactly (either zero for x <= 0); softmax: one element of a row
        block's (optionally causal) softmax, exp in fixed point with a floating exponent,
        |z - p_j| <= 2^-t p_j (|x_j - max| + 2 n + 8) over the n unmasked elements;
        block operators (a training step's canvas, see OperatorGame.md "Block operators"):
        one element of a block of the activation, every other element copied bit for bit;
        inside, a dot product of two state rows or of a state row and a committed column
        (FloatStep's bound), a transpose (exact), c1 l + c2 r within 2^-t (|c1 l| + |c2 r|),
        a windowed relu or relu's backward (exact); all plus 2^-140 absolute
        and the frame's truncation. The attention elements (qk: one score, av: one element of
        p v) are located here and their dot products passed to FloatStep.vy, whose address
        the caller names. Stateless (called with staticcall). The exact Python mirror is
        vcompute.verify.dispute.op_step.
"""

interface FloatStep:
    def within(x: DynArray[uint256, MAX_FW], w: DynArray[uint256, MAX_FW], k: uint256, u_bits: uint256,
               z: uint256) -> bool: view

MANT: constant(uint256) = 2**23 - 1
FX: constant(uint256) = 64
ONE: constant(uint256) = 2**64
C_SQRT2PI: constant(uint256) = 14718372293494604904  # round(sqrt(2/pi) 2^64)
C_CUBIC: constant(uint256) = 824846161255922601  # round(0.044715 2^64)
C_LN2: constant(uint256) = 12786308645202655660  # round(ln 2 2^64)
TERMS: constant(uint256) = 24
ABS_BITS: constant(uint256) = 140
FRAME: constant(uint256) = 200
MAX_DIM: constant(uint256) = 256
MAX_FW: constant(uint256) = MAX_DIM // 8
MAX_T: constant(uint256) = 64  # tokens of a prefill whose attention is decided (every row of a is sent)
NEG_INF: constant(uint256) = 4286578688  # float32 -inf: a masked score
POS_INF: constant(uint256) = 2139095040  # float32 +inf
OVF_M: constant(uint256) = 2**24 - 1  # float32 round-to-nearest overflows at OVF_M 2^104 = (2 - 2^-24) 2^127
QK: constant(uint256) = 8  # an attention score operator (OperatorGame.vy's kind numbers)
FROW_TAG: constant(uint256) = 8  # one float32 row (as OperatorGame.vy and Dispute.vy)
LN_EPS_M: constant(uint256) = 10995116  # float32 1e-5 = LN_EPS_M 2^(LN_EPS_E - 150)
LN_EPS_E: constant(uint256) = 110
LN_HOFF: constant(uint256) = 300
MAX_DEPTH: constant(uint256) = 64
LANE: constant(uint256) = 4294967295
# block operator kinds (OperatorGame.vy dispatches kinds >= MMS here)
MMS: constant(uint256) = 10  # a[i, al:al+n] . a[rho + jj, be:be+n]
MMP: constant(uint256) = 11  # a[i, al:al+n] . P[:, jj] (P's columns committed in param_root)
TR: constant(uint256) = 12  # a[rho + jj, al + ii]
AXPY: constant(uint256) = 13  # c1 a[i, al + jj] + c2 a[rho + ii, be + jj]
AXPYP: constant(uint256) = 14  # c1 P[ii, jj] + c2 a[i, al + jj] (P's rows committed in param_root)
RELUW: constant(uint256) = 15  # max(0, a[i, al + jj])
RELUG: constant(uint256) = 16  # a[i, al + jj] if a[i, be + jj] > 0 else zero

SM_OFF: constant(uint256) = 250  # a softmax's terms M 2^(q - 150 - SM_OFF) keep q >= 0 for p_j down to 2^-200


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
def _nan(b: uint256) -> bool:
    return b & 2147483647 > POS_INF


@pure
@internal
def _inf(b: uint256) -> bool:
    return b & 2147483647 == POS_INF


@pure
@internal
def _zero(b: uint256) -> bool:
    return b & 2147483647 == 0


@pure
@internal
def _scale(m: uint256, q: uint256, low: uint256) -> uint256:
    if q >= low:
        return m << (q - low)
    return m >> (low - q)


@pure
@internal
def _bits(m: uint256) -> uint256:
    # bit length
    n: uint256 = 0
    v: uint256 = m
    for _: uint256 in range(256):
        if v == 0:
            break
        v = v >> 1
        n += 1
    return n


@pure
@internal
def _signed(v: uint256, neg: bool) -> int256:
    if neg:
        return -convert(v, int256)
    return convert(v, int256)


@pure
@internal
def _close(zb: uint256, m1: uint256, q1: uint256, n1: bool, m2: uint256, q2: uint256, n2: bool,
           mx: uint256, qx: uint256, my: uint256, qy: uint256, with_ref: bool, bits: uint256, off: uint256,
           wide: bool) -> bool:
    # |z - (t1 + t2)| 2^bits <= [|t1 + t2|] + x + y + slack 2^bits, every term M 2^(q - 150 - off),
    # each truncated to units of 2^(low - 150 - off) (at most one unit lost per term). A claimed infinity
    # passes when the bound's interval reaches the overflow threshold on its side; a NaN (only if wide: two
    # terms either of which may overflow) when |t1| + |t2| = x + y and its bound reach it
    fz: bool = False
    mz: uint256 = 0
    ez: uint256 = 0
    sz: bool = False
    fz, mz, ez, sz = self._decode(zb & 4294967295)
    nan: bool = self._nan(zb)
    if nan and not wide:
        return False
    qz: uint256 = ez + off
    if not fz:
        # z stands at the threshold on its side
        mz = OVF_M
        qz = 254 + off
        sz = (zb >> 31) & 1 == 1 and not nan
    top: uint256 = max(max(qz + 24, qy + self._bits(my)),
                       max(q1 + self._bits(m1), max(q2 + self._bits(m2), qx + self._bits(mx))))
    low: uint256 = 0
    if top > FRAME:
        low = top - FRAME
    z: int256 = self._signed(self._scale(mz, qz, low), sz)
    ref: int256 = self._signed(self._scale(m1, q1, low), n1) + self._signed(self._scale(m2, q2, low), n2)
    base: int256 = convert(self._scale(mx, qx, low), int256) + convert(self._scale(my, qy, low), int256)
    if with_ref:
        base += abs(ref)
    if nan:
        ref = base
    if not fz and ((sz and ref <= z) or (not sz and ref >= z)):
        return True
    floor_at: uint256 = off + 150 - ABS_BITS
    slack: uint256 = 5
    if low < floor_at:
        slack = 4 + (1 << (floor_at - low))
    return abs(z - ref) << bits <= base + convert(slack << bits, int256)


@pure
@internal
def _exp_neg(s: uint256) -> uint256:
    # e^(-s / 2^64) 2^64: s = n ln2 + r, e^-r by its alternating series
    n: uint256 = s // C_LN2
    r: uint256 = s % C_LN2
    pos: uint256 = ONE
    neg: uint256 = 0
    term: uint256 = ONE
    for k: uint256 in range(1, TERMS + 1):
        term = term * r // (k * ONE)
        if k % 2 == 1:
            neg += term
        else:
            pos += term
    if n >= 256:
        return 0
    return (pos - neg) >> n


@pure
@external
def gelu_reference(xb: uint256) -> (uint256, uint256, bool):
    """The fixed-point GELU of float32 bits ``xb``: ``(G, q, negative)`` with ``|g| = G 2^(q - 214)``."""
    fx: bool = False
    mx: uint256 = 0
    ex: uint256 = 0
    sx: bool = False
    fx, mx, ex, sx = self._decode(xb & 4294967295)
    assert fx, "value: a non-finite input; no bound applies"
    return self._gelu(mx, ex, sx)


@pure
@internal
def _gelu(mx: uint256, ex: uint256, sx: bool) -> (uint256, uint256, bool):
    if ex >= 130:
        # |x| >= 8: sigma(2y) is 1 or 0 to within 2^-71
        if sx:
            return 0, ex, False
        return mx << FX, ex, False
    x: uint256 = self._scale(mx, ex, 86)
    x3: uint256 = (x * x * x) >> (2 * FX)
    t: uint256 = (2 * C_SQRT2PI * (x + ((C_CUBIC * x3) >> FX))) >> FX
    u: uint256 = self._exp_neg(t)
    f: uint256 = (ONE * ONE) // (ONE + u)
    if sx:
        f = ONE - f
    return mx * f, ex, sx


@pure
@external
def gelu_ok(xb: uint256, zb: uint256, tol_bits: uint256) -> bool:
    """Whether claimed float32 ``zb`` is GELU(``xb``) within ``2^-tol_bits (|x| + |g|)`` (+ 2^-140)."""
    assert tol_bits >= 8 and tol_bits <= 30, "value: tol_bits must be in 8..30"
    fx: bool = False
    mx: uint256 = 0
    ex: uint256 = 0
    sx: bool = False
    x: uint256 = xb & 4294967295
    if self._nan(x):
        return self._nan(zb)
    if x == POS_INF:
        return zb & 4294967295 == POS_INF
    if x == NEG_INF:
        # -inf sigma(-inf) is 0 in the limit, NaN in float arithmetic (-inf times 0): either
        return self._nan(zb) or self._zero(zb)
    fx, mx, ex, sx = self._decode(x)
    g: uint256 = 0
    q: uint256 = 0
    sg: bool = False
    g, q, sg = self._gelu(mx, ex, sx)
    return self._close(zb, g, q, sg, 0, 0, False, mx << FX, ex, 0, 0, True, tol_bits, FX, False)


@pure
@external
def add_ok(ab: uint256, bb: uint256, zb: uint256, u_bits: uint256) -> bool:
    """Whether claimed float32 ``zb`` is ``a + b`` within ``2^-u_bits |a + b|`` (+ 2^-140)."""
    assert u_bits >= 8 and u_bits <= 30, "value: u_bits must be in 8..30"
    fa: bool = False
    ma: uint256 = 0
    ea: uint256 = 0
    sa: bool = False
    fb: bool = False
    mb: uint256 = 0
    eb: uint256 = 0
    sb: bool = False
    a: uint256 = ab & 4294967295
    b: uint256 = bb & 4294967295
    if self._nan(a) or self._nan(b):
        return self._nan(zb)
    if self._inf(a) or self._inf(b):
        # inf + finite = inf, inf + inf = inf, inf - inf = NaN
        if self._inf(a) and self._inf(b) and a != b:
            return self._nan(zb)
        if self._inf(a):
            return zb & 4294967295 == a
        return zb & 4294967295 == b
    fa, ma, ea, sa = self._decode(a)
    fb, mb, eb, sb = self._decode(b)
    return self._close(zb, ma, ea, sa, mb, eb, sb, 0, 0, 0, 0, True, u_bits, 0, False)


@pure
@internal
def _shift(v: uint256, e: int256) -> uint256:
    if e >= 0:
        return v << convert(e, uint256)
    return v >> convert(-e, uint256)


@pure
@external
def ln_ok(x: DynArray[uint256, MAX_FW], d: uint256, gb: uint256, bb: uint256, j: uint256, zb: uint256,
          tol_bits: uint256) -> bool:
    """Whether claimed float32 ``zb`` is element ``j`` of LayerNorm(x) gamma_j + beta_j (eps 1e-5) within
    ``2^-tol_bits (|gamma_j| (|n_j| + max|x| / sigma') + |beta_j|)`` (+ 2^-140); x: d lanes, 8 a word."""
    assert tol_bits >= 8 and tol_bits <= 30, "value: tol_bits must be in 8..30"
    assert d >= 1 and d <= MAX_DIM and len(x) * 8 >= d and len(x) * 8 < d + 8, "value: x must hold d lanes"
    assert j < d, "value: j must be below d"
    fg: bool = False
    mg: uint256 = 0
    eg: uint256 = 0
    sg: bool = False
    fb: bool = False
    mb: uint256 = 0
    eb: uint256 = 0
    sb: bool = False
    fg, mg, eg, sg = self._decode(gb & 4294967295)
    fb, mb, eb, sb = self._decode(bb & 4294967295)
    ms: uint256[MAX_DIM] = empty(uint256[MAX_DIM])
    es: uint256[MAX_DIM] = empty(uint256[MAX_DIM])
    ng: bool[MAX_DIM] = empty(bool[MAX_DIM])
    top: uint256 = 0
    for t: uint256 in range(d, bound=MAX_DIM):
        f: bool = False
        f, ms[t], es[t], ng[t] = self._decode((x[t // 8] >> (32 * (t % 8))) & 4294967295)
        if not f:
            # an inf or NaN in the row: its mean and variance are NaN or inf - inf, every element NaN
            return self._nan(zb)
        top = max(top, es[t] + 24)
    if self._nan(gb) or self._nan(bb):
        return self._nan(zb)
    if not fg:
        # inf times n_j (zero or not, by rounding) plus beta: some inf or NaN
        return self._nan(zb) or self._inf(zb)
    if not fb:
        # gamma n_j + inf: that inf, or NaN if gamma n_j (|n_j| < 32) may overflow the other way
        return zb & 4294967295 == bb & 4294967295 or (self._nan(zb) and eg >= 250)
    if 2 * top + self._bits(d) >= 425:
        # the float32 sum of (x_t - mean)^2 (below d (2 max|x|)^2 < 2^(2 top - 298 + bits(d)), at most doubled by
        # rounding) may overflow: the two-pass value is then n = 0, so beta (any zero for a zero beta), and NaN
        # where x - mean overflows too; the exact value's bound below holds as well
        if self._nan(zb) or zb & 4294967295 == bb & 4294967295 or (self._zero(bb) and self._zero(zb)):
            return True
    low: uint256 = 0
    if top > 100:
        low = top - 100
    # the row in its frame (x_t = X_t 2^(low - 150)), its sum, and D_t = d X_t - sum
    xs: int256[MAX_DIM] = empty(int256[MAX_DIM])
    total: int256 = 0
    mx: uint256 = 0
    for t: uint256 in range(d, bound=MAX_DIM):
        v: uint256 = self._scale(ms[t], es[t], low)
        mx = max(mx, v)
        xs[t] = self._signed(v, ng[t])
        total += xs[t]
    di: int256 = convert(d, int256)
    var: uint256 = 0
    dj: int256 = 0
    for t: uint256 in range(d, bound=MAX_DIM):
        dt: int256 = di * xs[t] - total
        if t == j:
            dj = dt
        var += convert(abs(dt), uint256) ** 2
    # W = var + eps d^3 / u^2, scaled to W' 2^(2h) with W' about 2^180
    q: uint256 = LN_EPS_M * d * d * d
    sq: int256 = convert(LN_EPS_E + 150, int256) - 2 * convert(low, int256)
    bw: int256 = max(convert(self._bits(var), int256), convert(self._bits(q), int256) + sq)
    h: int256 = (bw - 180) // 2
    if bw < 180 and (bw - 180) % 2 != 0:
        h = (bw - 181) // 2
    w: uint256 = self._shift(var, -2 * h) + self._shift(q, sq - 2 * h)
    r: uint256 = isqrt(max(w, 1))
    sd: uint256 = isqrt(d << 128)
    n: uint256 = ((convert(abs(dj), uint256) * sd) << 64) // r
    tt: uint256 = ((mx * d * sd) << 64) // r
    off: uint256 = 128 + LN_HOFF
    qn: uint256 = convert(convert(eg + LN_HOFF, int256) - h, uint256)
    return self._close(zb, mg * n, qn, sg != (dj < 0), mb, eb + off, sb, mg * (n + tt), qn, mb, eb + off, False,
                       tol_bits, off, False)


@pure
@external
def relu_ok(xb: uint256, zb: uint256) -> bool:
    """Whether claimed float32 ``zb`` is ``max(0, x)`` exactly: ``x`` itself for ``x > 0``, either zero otherwise."""
    return self._relu(xb, zb, xb)


@pure
@internal
def _relu(xb: uint256, zb: uint256, gb: uint256) -> bool:
    # z = g where x > 0, either zero elsewhere (relu: g = x; relu's backward: g the incoming gradient), g's bits
    # copied (any NaN for a NaN g); x NaN: max(NaN, 0) and NaN > 0 differ by implementation, so g or zero
    x: uint256 = xb & 4294967295
    z: uint256 = zb & 4294967295
    g: uint256 = gb & 4294967295
    copied: bool = z == g or (self._nan(z) and self._nan(g))
    if self._nan(x):
        return copied or self._zero(z)
    if x >> 31 == 0 and x != 0:
        return copied
    return self._zero(z)


@pure
@internal
def _exp_parts(s: uint256) -> (uint256, uint256):
    # e^(-s / 2^64) = E 2^(-64 - n), E = e^-r 2^64 in (2^63, 2^64]: s = n ln2 + r, no precision lost to the shift
    n: uint256 = s // C_LN2
    r: uint256 = s % C_LN2
    pos: uint256 = ONE
    neg: uint256 = 0
    term: uint256 = ONE
    for k: uint256 in range(1, TERMS + 1):
        term = term * r // (k * ONE)
        if k % 2 == 1:
            neg += term
        else:
            pos += term
    return n, pos - neg


@pure
@external
def softmax_ok(x: DynArray[uint256, MAX_FW], d: uint256, blk: uint256, causal: bool, i: uint256, j: uint256,
               zb: uint256, tol_bits: uint256) -> bool:
    """Whether claimed float32 ``zb`` is element ``j`` of row ``i``'s softmax, within the bound.

    The row's first ``d`` lanes (8 a word; lanes beyond are not read) are cut into blocks of ``blk``; element ``j``'s block is
    normalised over its first ``n`` elements (``n = blk``, or ``min(i + 1, blk)`` if ``causal``);
    a masked element (beyond ``n``) must be zero exactly. Otherwise ``|z - p_j| <= 2^-tol_bits p_j
    (|x_j - max| + 2 n + 8)`` plus ``2^-140``, ``p_j = e^(x_j - max) / sum e^(x_t - max)``.
    """
    assert tol_bits >= 8 and tol_bits <= 30, "value: tol_bits must be in 8..30"
    assert d >= 1 and d <= MAX_DIM and len(x) * 8 >= d, "value: x must hold d lanes"
    assert j < d, "value: j must be below d"
    assert blk >= 1 and d % blk == 0, "value: the block must divide the row"
    lo: uint256 = j // blk * blk
    n: uint256 = blk
    if causal:
        n = min(i + 1, blk)
    # -inf (min_value) weighs zero; a NaN, a +inf, or nothing but -inf makes the block NaN (x - max is NaN),
    # inf / inf or 0 / 0 without the max: NaN there, and zero for the other elements
    xs: int256[MAX_DIM] = empty(int256[MAX_DIM])
    top: int256 = min_value(int256)
    nan: bool = False
    pinf: bool = False
    for t: uint256 in range(n, bound=MAX_DIM):
        b: uint256 = (x[(lo + t) // 8] >> (32 * ((lo + t) % 8))) & 4294967295
        f: bool = False
        m: uint256 = 0
        e: uint256 = 0
        ng: bool = False
        f, m, e, ng = self._decode(b)
        xs[t] = min_value(int256)
        if self._nan(b):
            nan = True
        elif b == POS_INF:
            pinf = True
        elif f:
            xs[t] = self._signed(self._scale(m, e, 86), ng)  # x 2^64, truncated
            top = max(top, xs[t])
    bad: bool = nan or pinf or top == min_value(int256)
    if j >= lo + n:
        return self._zero(zb) or (bad and self._nan(zb))
    if nan:
        return self._nan(zb)
    if bad:
        return self._nan(zb) or (self._zero(zb) and (x[j // 8] >> (32 * (j % 8))) & 4294967295 != POS_INF)
    # S = sum e^(x_t - max) in units of 2^-128 (the max term alone is 2^128)
    total: uint256 = 0
    ej: uint256 = 0
    nj: uint256 = 200
    sj: uint256 = 0
    for t: uint256 in range(n, bound=MAX_DIM):
        if xs[t] == min_value(int256):
            continue
        s: uint256 = convert(top - xs[t], uint256)
        nt: uint256 = 0
        et: uint256 = 0
        nt, et = self._exp_parts(s)
        if nt < 128:
            total += (et << 64) >> nt
        if lo + t == j:
            ej = et
            nj = nt
            sj = s
    if nj >= 200:
        # p_j < 2^-199 (or x_j = -inf: p_j = 0): float32 holds zero or a subnormal there, inside the absolute floor
        return self._close(zb, 0, 0, False, 0, 0, False, 0, 0, 0, 0, False, tol_bits, SM_OFF, False)
    r: uint256 = (ej << 190) // total  # p_j = r 2^(-126 - nj)
    base: uint256 = r * (sj + ((2 * n + 8) << 64))  # p_j (|x_j - max| + 2n + 8) = base 2^(-190 - nj)
    return self._close(zb, r, SM_OFF + 24 - nj, False, 0, 0, False, base, SM_OFF - 40 - nj, 0, 0, False, tol_bits,
                       SM_OFF, False)


@pure
@external
def scaled_bits(zb: uint256, s: uint256) -> uint256:
    """The float32 bits of ``z 2^s`` (exact: ``s`` <= 8 only moves the exponent; an overflow is infinite)."""
    assert s <= 8, "value: s must be at most 8"
    return self._scaled_bits(zb, s)


@pure
@internal
def _scaled_bits(zb: uint256, s: uint256) -> uint256:
    b: uint256 = zb & 4294967295
    sign: uint256 = b & 2147483648
    e: uint256 = (b >> 23) & 255
    if e == 255:
        return b
    if e > 0:
        if e + s >= 255:
            return sign | 2139095040
        return b + (s << 23)
    f: uint256 = (b & MANT) << s  # a subnormal (or zero): f 2^-149, now f 2^(s - 149)
    if f <= MANT:
        return sign | f
    n: uint256 = self._bits(f)  # 24 .. 23 + s: normal with exponent n - 23, no bit lost
    return sign | ((n - 23) << 23) | ((f >> (n - 24)) & MANT)


@pure
@internal
def _merkle_ok(root: bytes32, data: bytes32, index: uint256, proof: DynArray[bytes32, MAX_DEPTH],
               n_leaves: uint256) -> bool:
    # vcompute.core.merkle, as OperatorGame._merkle_ok
    if index >= n_leaves or n_leaves >= 2**64:
        return False
    h: bytes32 = sha256(concat(b"\x00", data))
    i: uint256 = index
    n: uint256 = n_leaves
    used: uint256 = 0
    for _: uint256 in range(MAX_DEPTH):
        if n <= 1:
            break
        if (i ^ 1) < n:
            if used >= len(proof):
                return False
            if i % 2 == 0:
                h = sha256(concat(b"\x01", h, proof[used]))
            else:
                h = sha256(concat(b"\x01", proof[used], h))
            used += 1
        i = i // 2
        n = (n + 1) // 2
    if used != len(proof):
        return False
    return sha256(concat(b"\x02", slice(convert(n_leaves, bytes32), 24, 8), h)) == root


@pure
@internal
def _lane(words: DynArray[uint256, MAX_FW], j: uint256) -> uint256:
    return (words[j // 8] >> (32 * (j % 8))) & LANE


@pure
@internal
def _lanes(words: DynArray[uint256, MAX_FW], lo: uint256, n: uint256) -> DynArray[uint256, MAX_FW]:
    # lanes lo .. lo + n - 1 (lo, n multiples of 8): whole words
    out: DynArray[uint256, MAX_FW] = []
    for w: uint256 in range(lo // 8, lo // 8 + MAX_FW, bound=MAX_FW):
        if w >= (lo + n) // 8:
            break
        out.append(words[w])
    return out


@pure
@internal
def _heads(kind: uint256, k: uint256, m: uint256, param_root: bytes32, rows: uint256) -> (uint256, uint256, uint256,
                                                                                      uint256):
    # (H, T, d, dh) of an attention operator: T = rows tokens (a multiple of 8 up to MAX_T), d = H dh,
    # dh a multiple of 8; qk reads [q | k | v] (k = 3d) and writes [scores | v] (m = H T + d)
    param: uint256 = convert(param_root, uint256)  # heads << 32 | T
    h: uint256 = param >> 32
    t: uint256 = param & 4294967295
    d: uint256 = m
    if kind == QK:
        d = k // 3
        assert k == 3 * d and m == h * t + d, "value: qk widths"
    else:
        assert k == h * t + d, "value: av widths"
    assert h >= 1 and t == rows and t % 8 == 0 and t <= MAX_T and d % (8 * h) == 0, "value: heads and tokens"
    return h, t, d, d // h


@view
@external
def qk_ok(a_row: DynArray[uint256, MAX_FW], key_row: DynArray[uint256, MAX_FW], k: uint256, m: uint256,
          param: bytes32, rows: uint256, i: uint256, j: uint256, zb: uint256, u_bits: uint256,
          float_step: address) -> bool:
    """Whether claimed float32 ``zb`` is element ``(i, j)`` of a ``qk`` operator's output ``[scores | v]``.

    ``a_row`` is row ``i`` and ``key_row`` row ``j mod T`` of the agreed ``a = [q | k | v]`` (the
    caller opens both); a ``v`` lane must be copied and a masked score (key after query) be
    ``-inf``, bit for bit; a score is ``q_i^h . k_j^h / sqrt(dh)`` within FloatStep's bound at
    ``2^s z`` (``sqrt(dh) = 2^s``, exact).
    """
    h: uint256 = 0
    t: uint256 = 0
    d: uint256 = 0
    dh: uint256 = 0
    h, t, d, dh = self._heads(QK, k, m, param, rows)
    assert len(a_row) == k // 8 and len(key_row) == k // 8, "value: row lengths"
    if j >= h * t:
        return zb == self._lane(a_row, 2 * d + j - h * t)  # v is copied bit for bit
    if j % t > i:
        return zb == NEG_INF  # causal: a later key is masked
    s: uint256 = 0
    for e: uint256 in range(1, 5):
        if 4 ** e == dh:
            s = e
    assert s > 0, "value: sqrt(dh) must be a power of two"
    hd: uint256 = j // t
    return staticcall FloatStep(float_step).within(self._lanes(a_row, hd * dh, dh),
                                                   self._lanes(key_row, d + hd * dh, dh), dh, u_bits,
                                                   self._scaled_bits(zb, s))


@view
@external
def block_ok(kind: uint256, width: uint256, bits: uint256, param_root: bytes32, rows: uint256, a_root: bytes32,
             a_row: DynArray[uint256, MAX_FW], p_col: DynArray[uint256, MAX_FW], p_proof: DynArray[bytes32, MAX_DEPTH],
             i: uint256, j: uint256, z: uint256, float_step: address) -> bool:
    """Whether claimed float32 ``z`` is element (i, j) of a block operator's output (OperatorGame.md, "Block operators").

    ``bits`` packs the tolerance t (bits 0-7), the geometry r0, rn, o, m, al, n, rho, be (16 bits each from
    bit 8) and the constants c1 (bit 136), c2 (bit 168); ``a_row`` is row i of the agreed canvas (``width``
    lanes, ``rows`` rows, root ``a_root``), ``p_col`` the second row of it, or the parameter's column or row,
    the element reads, opened here against ``a_root`` or ``param_root``. Outside the block, z must be row
    i's lane j bit for bit.
    """
    assert self._geometry_ok(kind, width, bits, rows), "value: block geometry"
    f: uint256[8] = empty(uint256[8])
    for k: uint256 in range(8):
        f[k] = (bits >> (8 + 16 * k)) & 65535
    # f: r0, rn, o, m, al, n, rho, be
    if i < f[0] or i >= f[0] + f[1] or j < f[2] or j >= f[2] + f[3]:
        return z == self._lane(a_row, j)
    ii: uint256 = i - f[0]
    jj: uint256 = j - f[2]
    if kind == RELUW:
        return self._relu(self._lane(a_row, f[4] + jj), z, self._lane(a_row, f[4] + jj))
    if kind == RELUG:
        return self._relu(self._lane(a_row, f[7] + jj), z, self._lane(a_row, f[4] + jj))
    # the second opening: a row of the canvas (mms, tr: row rho + jj; axpy: row rho + ii), or P's column jj (mmp)
    # or row ii (axpyp)
    idx: uint256 = f[6] + jj
    root: bytes32 = a_root
    leaves: uint256 = rows
    lanes: uint256 = width
    if kind == AXPY:
        idx = f[6] + ii
    elif kind == MMP:
        idx = jj
        root = param_root
        leaves = f[3]
        lanes = f[5]
    elif kind == AXPYP:
        idx = ii
        root = param_root
        leaves = f[1]
        lanes = f[3]
    assert len(p_col) * 8 == lanes and self._merkle_ok(root, sha256(abi_encode(FROW_TAG, lanes, p_col)), idx,
                                                       p_proof, leaves), "value: p_col opening"
    if kind == TR:
        return z == self._lane(p_col, f[4] + ii)
    if kind == MMS or kind == MMP:
        w: DynArray[uint256, MAX_FW] = p_col
        if kind == MMS:
            w = self._lanes(p_col, f[7], f[5])
        return staticcall FloatStep(float_step).within(self._lanes(a_row, f[4], f[5]), w, f[5], bits & 255, z)
    lb: uint256 = self._lane(a_row, f[4] + jj)
    rb: uint256 = self._lane(p_col, f[7] + jj)
    if kind == AXPYP:
        rb = lb
        lb = self._lane(p_col, jj)
    assert kind == AXPY or kind == AXPYP, "value: unknown block operator"
    return self._axpby((bits >> 136) & LANE, lb, (bits >> 168) & LANE, rb, z, bits & 255)


@pure
@internal
def _geometry_ok(kind: uint256, width: uint256, bits: uint256, rows: uint256) -> bool:
    # op_block.geometry_ok: every window inside the rows x width canvas, matmul windows word-aligned,
    # the tolerance in the range its check takes
    f: uint256[8] = empty(uint256[8])
    for k: uint256 in range(8):
        f[k] = (bits >> (8 + 16 * k)) & 65535
    # f: r0, rn, o, m, al, n, rho, be
    t: uint256 = bits & 255
    if f[1] < 1 or f[3] < 1 or f[0] + f[1] > rows or f[2] + f[3] > width:
        return False
    if kind == MMS or kind == MMP:
        if kind == MMS and (f[7] % 8 != 0 or f[7] + f[5] > width or f[6] + f[3] > rows):
            return False
        return f[5] >= 8 and f[4] % 8 == 0 and f[5] % 8 == 0 and f[4] + f[5] <= width and t >= 10 and t <= 24
    if kind == TR:
        return f[6] + f[3] <= rows and f[4] + f[1] <= width
    if f[4] + f[3] > width:
        return False
    if (kind == AXPY or kind == RELUG) and f[7] + f[3] > width:
        return False
    if kind == AXPY:
        return f[6] + f[1] <= rows and t >= 8 and t <= 30
    if kind == AXPYP:
        return f[3] % 8 == 0 and t >= 8 and t <= 30
    return kind == RELUW or kind == RELUG


@pure
@external
def op_valid(kind: uint256, k: uint256, m: uint256, bits: uint256, param: bytes32, rows: uint256, dx: uint256,
             da: uint256) -> bool:
    """Whether operator leaf ``(kind, k, m, bits, param)`` on an input state of ``rows`` rows, ``x`` of ``dx``
    and ``a`` of ``da`` lanes is a well-formed operator: every element of its output can then be decided
    (OperatorGame.md, "Malformed operators"); the mirror is ``op_validity.op_valid``."""
    if kind < 1 or kind > RELUG or rows < 1 or rows > MAX_DIM or da != k:
        return False
    if k < 8 or k > MAX_DIM or m < 8 or m > MAX_DIM or dx < 8 or dx > MAX_DIM or k % 8 != 0 or m % 8 != 0 \
            or dx % 8 != 0:
        return False
    if kind != 1 and kind != QK and kind != QK + 1 and k != m:
        return False
    if (kind == 4 or kind == 5) and dx != m:
        return False
    p: uint256 = convert(param, uint256)
    if kind == QK or kind == QK + 1:
        h: uint256 = p >> 32
        t: uint256 = p & LANE
        if h < 1 or h > MAX_DIM or t != rows or t % 8 != 0 or t > MAX_T:
            return False
        d: uint256 = m
        if kind == QK:
            d = k // 3
            if k != 3 * d or m != h * t + d:
                return False
        elif k != h * t + d:
            return False
        if d % (8 * h) != 0 or (kind == QK and d // h != 16 and d // h != 64 and d // h != 256):
            return False
    if kind == 1 or kind == QK or kind == QK + 1:
        return bits >= 10 and bits <= 24
    if kind >= MMS:
        return self._geometry_ok(kind, k, bits, rows)
    if kind == 6:
        return True
    if bits < 8 or bits > 30:
        return False
    if kind == 7:
        span: uint256 = p >> 32
        blk: uint256 = (p >> 1) & 2147483647
        return span >= 1 and span <= k and blk >= 1 and span % blk == 0
    return True


@pure
@internal
def _prod(cb: uint256, vb: uint256) -> uint256:
    # IEEE class of c v: 0 finite, 1 +inf, 2 -inf, 3 NaN (NaN in, or inf times zero)
    if self._nan(cb) or self._nan(vb):
        return 3
    if self._inf(cb) or self._inf(vb):
        if self._zero(cb) or self._zero(vb):
            return 3
        return 1 + (((cb ^ vb) >> 31) & 1)
    return 0


@pure
@internal
def _axpby(c1b: uint256, lb: uint256, c2b: uint256, rb: uint256, zb: uint256, t: uint256) -> bool:
    # |z - (c1 l + c2 r)| <= 2^-t (|c1 l| + |c2 r|) + 2^-140, both products exact (48-bit mantissas); non-finite
    # products by IEEE (NaN wins, inf - inf = NaN), a finite one beside an inf may round to the other inf
    assert t >= 8 and t <= 30, "value: tol_bits must be in 8..30"
    f1: bool = False
    m1: uint256 = 0
    e1: uint256 = 0
    s1: bool = False
    fl: bool = False
    ml: uint256 = 0
    el: uint256 = 0
    sl: bool = False
    f2: bool = False
    m2: uint256 = 0
    e2: uint256 = 0
    s2: bool = False
    fr: bool = False
    mr: uint256 = 0
    er: uint256 = 0
    sr: bool = False
    f1, m1, e1, s1 = self._decode(c1b)
    fl, ml, el, sl = self._decode(lb)
    f2, m2, e2, s2 = self._decode(c2b)
    fr, mr, er, sr = self._decode(rb)
    k1: uint256 = self._prod(c1b, lb)
    k2: uint256 = self._prod(c2b, rb)
    if k1 == 3 or k2 == 3 or (k1 > 0 and k2 > 0 and k1 != k2):
        return self._nan(zb)
    if k1 > 0 or k2 > 0:
        # one inf (or two alike): that inf; NaN too if the finite product (|p| >= 2^127) may round to the other
        big: bool = k2 == 0 and self._bits(m2 * mr) + e2 + er >= 428
        if k1 == 0:
            big = self._bits(m1 * ml) + e1 + el >= 428
        return zb & 4294967295 == POS_INF + ((max(k1, k2) - 1) << 31) or (self._nan(zb) and big)
    if self._inf(zb):
        # a product that alone rounds past the largest float32 is that inf without an FMA (2 2^127 - 2^127: +inf)
        neg: bool = (zb >> 31) & 1 == 1
        if (neg == (s1 != sl) and self._ovf(m1 * ml, e1 + el)) or (neg == (s2 != sr) and self._ovf(m2 * mr, e2 + er)):
            return True
    return self._close(zb, m1 * ml, e1 + el, s1 != sl, m2 * mr, e2 + er, s2 != sr, m1 * ml, e1 + el, m2 * mr,
                       e2 + er, False, t, 150, True)


@pure
@internal
def _ovf(m: uint256, q: uint256) -> bool:
    # whether the product M 2^(q - 300) of two decoded float32s rounds to inf in float32: |p| >= 2^128 - 2^103
    b: uint256 = self._bits(m)
    if b + q != 428:
        return b + q > 428
    return b >= 25 and (m >> (b - 25)) >= 33554431


@pure
@internal
def _rows_root(rows: DynArray[DynArray[uint256, MAX_FW], MAX_T], width: uint256) -> bytes32:
    # vcompute.core.merkle's root over the row digests (odd node promoted)
    level: DynArray[bytes32, MAX_T] = []
    for r: DynArray[uint256, MAX_FW] in rows:
        level.append(sha256(concat(b"\x00", sha256(abi_encode(FROW_TAG, width, r)))))
    n: uint256 = len(rows)
    for _: uint256 in range(7):
        if n <= 1:
            break
        for i: uint256 in range(MAX_T):
            if 2 * i >= n:
                break
            if 2 * i + 1 < n:
                level[i] = sha256(concat(b"\x01", level[2 * i], level[2 * i + 1]))
            else:
                level[i] = level[2 * i]
        n = (n + 1) // 2
    return sha256(concat(b"\x02", slice(convert(len(rows), bytes32), 24, 8), level[0]))


@view
@external
def av_ok(rows: DynArray[DynArray[uint256, MAX_FW], MAX_T], k: uint256, m: uint256, param: bytes32, n_rows: uint256,
          i: uint256, j: uint256, zb: uint256, u_bits: uint256, float_step: address) -> (bytes32, bool):
    """``(root, ok)`` of an ``av`` element: ``root`` is the Merkle root of ``rows`` (every row of the
    agreed ``a = [p | v]``; the caller compares it with the agreed one), ``ok`` whether claimed
    float32 ``zb`` is element ``(i, j)`` of ``p v``: ``p_i^h . v^h[:, j mod dh]`` (``h = j // dh``)
    within FloatStep's bound."""
    h: uint256 = 0
    t: uint256 = 0
    d: uint256 = 0
    dh: uint256 = 0
    h, t, d, dh = self._heads(QK + 1, k, m, param, n_rows)
    assert len(rows) == t, "value: send every row of a"
    for r: DynArray[uint256, MAX_FW] in rows:
        assert len(r) == k // 8, "value: row lengths"
    assert i < t and j < m, "value: the element is outside the output"
    hd: uint256 = j // dh
    lane: uint256 = h * t + j
    v: DynArray[uint256, MAX_FW] = []
    for w: uint256 in range(MAX_T // 8):
        if w >= t // 8:
            break
        word: uint256 = 0
        for u: uint256 in range(8):
            word |= self._lane(rows[8 * w + u], lane) << (32 * u)
        v.append(word)
    return self._rows_root(rows, k), staticcall FloatStep(float_step).within(self._lanes(rows[i], hd * t, t), v, t,
                                                                             u_bits, zb)
