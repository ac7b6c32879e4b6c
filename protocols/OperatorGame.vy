# pragma version ~=0.4.3
"""
@title OperatorGame
@notice Operator-level refereed delegation (see OperatorGame.md beside this file): a claimant
        commits a Merkle root over the states after every *operator* of a float32 pass of
        n_layers layers of per_layer operators each (layernorm, linear, bias add, GELU, residual add),
        with a bond; a challenger disputes with its own root and an equal bond. They bisect
        first over the layer outputs (cut points at multiples of per_layer) down to one layer,
        then over that layer's operators down to one operator; the challenger names one
        element of the claimant's output of it, and the claimant opens that element, the
        operator's inputs (against the agreed state) and its parameters (against the job's
        operator root). A linear element is held to its rounding bound by FloatStep.vy, an
        add, GELU, layernorm, softmax or attention element by OperatorStep.vy, a ReLU exactly. If the
        claimant's element is out of bound, the challenger opens its own output of that element: within
        bound, the challenger wins; out of bound (or not opened), nobody won and both bonds are forfeit.
        The loser's bond goes to the winner, less burn_bps to the treasury (burned if none). Pull
        payments. Revert reasons start with "state:", "unauthorized:", "timeout:", "value:".
"""

UNUSED: constant(uint8) = 0
COMMITTED: constant(uint8) = 1
DISPUTED: constant(uint8) = 2
FINALIZED: constant(uint8) = 3
SLASHED: constant(uint8) = 4
CLAIMANT_REVEALS: constant(uint8) = 1
CHALLENGER_REVEALS: constant(uint8) = 2
ONE_STEP: constant(uint8) = 3  # the challenger names an element of the claimant's output
ELEMENT: constant(uint8) = 4  # the claimant opens it
PROVE: constant(uint8) = 5  # the claimant's element is out of bound: the challenger opens its own
# operator kinds
LIN: constant(uint256) = 1  # a := a w (w: k x m, committed column by column)
BIAS: constant(uint256) = 2  # a := a + b (b: one row of m)
GELU: constant(uint256) = 3  # a := gelu_tanh(a)
RESID: constant(uint256) = 4  # x := x + a, a := that same sum
LN: constant(uint256) = 5  # a := layernorm(x) gamma + beta (one row at a time)
RELU: constant(uint256) = 6  # a := max(0, a), exactly
QK: constant(uint256) = 8  # a := [q k^T / sqrt(dh), causal | v] from a = [q | k | v] (param: heads << 32 | T)
AV: constant(uint256) = 9  # a := p v per head from a = [p | v] (param: heads << 32 | T)
SOFTMAX: constant(uint256) = 7  # a := softmax of each row block of the first span lanes (param: span, block, causal)
LNP_TAG: constant(uint256) = 13  # a layernorm's parameter: its gamma and beta row digests
MMS: constant(uint256) = 10  # block operators MMS..RELUG = 16 (a training step's canvas): OperatorStep.block_ok
RELUG: constant(uint256) = 16

MAX_DIM: constant(uint256) = 256
MAX_T: constant(uint256) = 64  # tokens of a prefill whose attention is decided (every row of a is sent)
MAX_FW: constant(uint256) = MAX_DIM // 8
MAX_DEPTH: constant(uint256) = 64
MAX_ARITY: constant(uint256) = 16
FROW_TAG: constant(uint256) = 8  # one float32 row (shared with Dispute.vy)
OSTATE_TAG: constant(uint256) = 10  # a state: the residual stream x and the activation a
OPL_TAG: constant(uint256) = 11  # an operator leaf
OJOB_TAG: constant(uint256) = 12  # an operator-level job id

interface FloatStep:
    def within(x: DynArray[uint256, MAX_FW], w: DynArray[uint256, MAX_FW], k: uint256, u_bits: uint256,
               z: uint256) -> bool: view

interface OperatorStep:
    def add_ok(ab: uint256, bb: uint256, zb: uint256, u_bits: uint256) -> bool: view
    def gelu_ok(xb: uint256, zb: uint256, tol_bits: uint256) -> bool: view
    def ln_ok(x: DynArray[uint256, MAX_FW], d: uint256, gb: uint256, bb: uint256, j: uint256, zb: uint256,
              tol_bits: uint256) -> bool: view
    def relu_ok(xb: uint256, zb: uint256) -> bool: view
    def softmax_ok(x: DynArray[uint256, MAX_FW], d: uint256, blk: uint256, causal: bool, i: uint256, j: uint256,
                   zb: uint256, tol_bits: uint256) -> bool: view
    def qk_ok(a_row: DynArray[uint256, MAX_FW], key_row: DynArray[uint256, MAX_FW], k: uint256, m: uint256,
              param: bytes32, rows: uint256, i: uint256, j: uint256, zb: uint256, u_bits: uint256,
              float_step: address) -> bool: view
    def av_ok(rows: DynArray[DynArray[uint256, MAX_FW], MAX_T], k: uint256, m: uint256, param: bytes32,
              n_rows: uint256, i: uint256, j: uint256, zb: uint256, u_bits: uint256,
              float_step: address) -> (bytes32, bool): view
    def block_ok(kind: uint256, width: uint256, bits: uint256, param_root: bytes32, rows: uint256, a_root: bytes32,
                 a_row: DynArray[uint256, MAX_FW], p_col: DynArray[uint256, MAX_FW],
                 p_proof: DynArray[bytes32, MAX_DEPTH], i: uint256, j: uint256, z: uint256,
                 float_step: address) -> bool: view
    def op_valid(kind: uint256, k: uint256, m: uint256, bits: uint256, param: bytes32, rows: uint256, dx: uint256,
                 da: uint256) -> bool: view

struct Claim:
    claimant: address
    job_id: bytes32
    ops_root: bytes32
    input_state: bytes32
    n_ops: uint256
    per_layer: uint256
    root: bytes32
    result: bytes32
    bond: uint256
    window: uint256
    deadline: uint256
    state: uint8

struct Game:
    challenger: address
    root: bytes32
    lo: uint256
    hi: uint256
    agreed: bytes32
    claimant_hi: bytes32
    challenger_hi: bytes32
    phase: uint8
    deadline: uint256
    rounds: uint256
    ei: uint256
    ej: uint256

struct Op:
    kind: uint256
    k: uint256
    m: uint256
    bits: uint256
    param_root: bytes32

struct Frame:
    rows: uint256
    dx: uint256
    x_root: bytes32
    a_root: bytes32
    out_root: bytes32
    da: uint256

event Committed:
    claim_id: indexed(bytes32)
    claimant: address
    root: bytes32

event Disputed:
    claim_id: indexed(bytes32)
    challenger: address
    root: bytes32

event Moved:
    claim_id: indexed(bytes32)
    lo: uint256
    hi: uint256
    phase: uint8

event Settled:
    claim_id: indexed(bytes32)
    winner: address
    loser: address
    how: uint8   # 1 the element was checked, 2 move timeout, 3 nobody won (both elements out of bound)

claims: public(HashMap[bytes32, Claim])
games: public(HashMap[bytes32, Game])
# who won the game that SLASHED a claim (empty: nobody won); read by JobEscrow
winner: public(HashMap[bytes32, address])
credits: public(HashMap[address, uint256])
held: public(uint256)
burned: public(uint256)
treasury: public(address)
burn_bps: public(uint256)
move_timeout: public(uint256)
arity: public(uint256)
min_bond: public(uint256)
float_step: public(address)
op_step: public(address)
claimant_points: HashMap[bytes32, DynArray[bytes32, MAX_ARITY - 1]]


@deploy
def __init__(treasury: address, burn_bps: uint256, move_timeout: uint256, min_bond: uint256, arity: uint256,
             float_step: address, op_step: address):
    assert burn_bps <= 10000, "value: burn_bps is at most 10000"
    assert move_timeout > 0, "value: move_timeout must be positive"
    assert arity >= 2 and arity <= MAX_ARITY, "value: arity must be in 2..MAX_ARITY"
    assert float_step != empty(address) and op_step != empty(address), "value: both step checkers are needed"
    self.treasury = treasury
    self.burn_bps = burn_bps
    self.move_timeout = move_timeout
    self.min_bond = min_bond
    self.arity = arity
    self.float_step = float_step
    self.op_step = op_step


@pure
@internal
def _job_id(ops_root: bytes32, input_state: bytes32, n_layers: uint256, per_layer: uint256) -> bytes32:
    return sha256(abi_encode(OJOB_TAG, ops_root, input_state, n_layers, per_layer))


@pure
@external
def job_id_of(ops_root: bytes32, input_state: bytes32, n_layers: uint256, per_layer: uint256) -> bytes32:
    """The job id a claim names: sha256 of its operators, input state, depth and operators per layer."""
    return self._job_id(ops_root, input_state, n_layers, per_layer)


@pure
@internal
def _merkle_ok(root: bytes32, data: bytes32, index: uint256, proof: DynArray[bytes32, MAX_DEPTH],
               n_leaves: uint256) -> bool:
    # vcompute.core.merkle: leaf H(0x00||data), node H(0x01||l||r), odd node promoted,
    # root H(0x02 || n as 8 bytes || top)
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
def _state(rows: uint256, dx: uint256, x_root: bytes32, da: uint256, a_root: bytes32) -> bytes32:
    return sha256(abi_encode(OSTATE_TAG, rows, dx, x_root, da, a_root))


@pure
@internal
def _row_digest(words: DynArray[uint256, MAX_FW], n: uint256) -> bytes32:
    return sha256(abi_encode(FROW_TAG, n, words))


@pure
@internal
def _lane(words: DynArray[uint256, MAX_FW], j: uint256) -> uint256:
    return (words[j // 8] >> (32 * (j % 8))) & 4294967295


@internal
def _credit_win(winner: address, own: uint256, lost: uint256):
    share: uint256 = lost * self.burn_bps // 10000
    self.credits[winner] += own + lost - share
    if self.treasury == empty(address):
        self.burned += share
        self.held -= share
    else:
        self.credits[self.treasury] += share


@internal
def _settle(claim_id: bytes32, claimant_won: bool, how: uint8):
    c: Claim = self.claims[claim_id]
    g: Game = self.games[claim_id]
    if claimant_won:
        self._credit_win(c.claimant, 0, c.bond)
        # the claim stays open to other challengers, its window restarted (one colluding
        # loser cannot run out the clock on an honest watcher)
        self.claims[claim_id].deadline = max(c.deadline, block.timestamp + c.window)
        self.claims[claim_id].state = COMMITTED
        log Settled(claim_id=claim_id, winner=c.claimant, loser=g.challenger, how=how)
    else:
        self._credit_win(g.challenger, c.bond, c.bond)
        self.claims[claim_id].state = SLASHED
        self.winner[claim_id] = g.challenger
        log Settled(claim_id=claim_id, winner=g.challenger, loser=c.claimant, how=how)


@internal
def _judge(claim_id: bytes32, phase: uint8, ok: bool):
    # ELEMENT: the claimant's element judged (ok: it wins; else the challenger must open its own);
    # PROVE: the challenger's (ok: it wins; else both claims are wrong there and nobody wins)
    if phase == ELEMENT and ok:
        self._settle(claim_id, True, 1)
    elif phase == ELEMENT:
        self.games[claim_id].phase = PROVE
        self.games[claim_id].deadline = block.timestamp + self.move_timeout
        log Moved(claim_id=claim_id, lo=self.games[claim_id].lo, hi=self.games[claim_id].hi, phase=PROVE)
    elif ok:
        self._settle(claim_id, False, 1)
    else:
        share: uint256 = 2 * self.claims[claim_id].bond
        if self.treasury == empty(address):
            self.burned += share
            self.held -= share
        else:
            self.credits[self.treasury] += share
        self.claims[claim_id].state = SLASHED
        log Settled(claim_id=claim_id, winner=empty(address), loser=empty(address), how=3)


@external
@payable
@nonreentrant
def commit(ops_root: bytes32, input_state: bytes32, n_layers: uint256, per_layer: uint256, root: bytes32,
           result: bytes32, result_proof: DynArray[bytes32, MAX_DEPTH], window: uint256) -> bytes32:
    """Commit a trace root (n_layers * per_layer + 1 leaves: the input state, then the state after each operator)."""
    assert n_layers > 0 and per_layer > 0 and n_layers * per_layer < 2**32, \
        "value: n_layers * per_layer must be in 1..2**32-1"
    assert window > 0, "value: the challenge window must be positive"
    assert msg.value >= self.min_bond and msg.value > 0, "value: the bond is below min_bond"
    n: uint256 = n_layers * per_layer
    job_id: bytes32 = self._job_id(ops_root, input_state, n_layers, per_layer)
    claim_id: bytes32 = sha256(abi_encode(job_id, msg.sender))
    assert self.claims[claim_id].state == UNUSED, "state: this claimant already committed for this job"
    assert self._merkle_ok(root, result, n, result_proof, n + 1), "value: the result is not the last leaf of the root"
    self.claims[claim_id] = Claim(claimant=msg.sender, job_id=job_id, ops_root=ops_root,
                                  input_state=input_state, n_ops=n,
                                  per_layer=per_layer, root=root, result=result, bond=msg.value, window=window,
                                  deadline=block.timestamp + window, state=COMMITTED)
    self.held += msg.value
    log Committed(claim_id=claim_id, claimant=msg.sender, root=root)
    return claim_id


@external
@payable
@nonreentrant
def dispute(claim_id: bytes32, root: bytes32, result: bytes32, result_proof: DynArray[bytes32, MAX_DEPTH]):
    """Dispute a committed claim with a rival trace root and result, posting a bond equal to the claimant's."""
    c: Claim = self.claims[claim_id]
    assert c.state == COMMITTED, "state: the claim is not open to disputes"
    assert block.timestamp < c.deadline, "timeout: the challenge window has closed"
    assert msg.sender != c.claimant, "unauthorized: a claimant cannot dispute itself"
    assert msg.value == c.bond, "value: the bond must equal the claimant's"
    assert result != c.result, "value: the results agree; nothing to dispute"
    assert self._merkle_ok(root, result, c.n_ops, result_proof, c.n_ops + 1), \
        "value: the result is not the last leaf of the root"
    self.held += msg.value
    self.claims[claim_id].state = DISPUTED
    # state 0 is the job's input, fixed by the job id: both parties agree on it
    self.games[claim_id] = Game(challenger=msg.sender, root=root, lo=0, hi=c.n_ops, agreed=c.input_state,
                                claimant_hi=c.result, challenger_hi=result, phase=CLAIMANT_REVEALS,
                                deadline=block.timestamp + self.move_timeout, rounds=0, ei=0, ej=0)
    if c.n_ops == 1:
        self.games[claim_id].phase = ONE_STEP
    log Disputed(claim_id=claim_id, challenger=msg.sender, root=root)


@view
@internal
def _points(lo: uint256, hi: uint256, per_layer: uint256) -> DynArray[uint256, MAX_ARITY - 1]:
    # first level: while more than one layer is disputed, cut only at layer outputs (multiples of
    # per_layer); second level: the operators of the one disputed layer
    unit: uint256 = 1
    if hi - lo > per_layer:
        unit = per_layer
    n: uint256 = (hi - lo) // unit
    s: uint256 = min(self.arity, n)
    out: DynArray[uint256, MAX_ARITY - 1] = []
    for i: uint256 in range(1, MAX_ARITY):
        if i >= s:
            break
        out.append(lo + unit * (n * i // s))
    return out


@view
@external
def points(claim_id: bytes32) -> DynArray[uint256, MAX_ARITY - 1]:
    """The leaf indices the mover must open now (the cut points of the disagreement)."""
    g: Game = self.games[claim_id]
    return self._points(g.lo, g.hi, self.claims[claim_id].per_layer)


@external
@nonreentrant
def reveal(claim_id: bytes32, leaves: DynArray[bytes32, MAX_ARITY - 1],
           proofs: DynArray[DynArray[bytes32, MAX_DEPTH], MAX_ARITY - 1]):
    """Open the caller's leaves at the cut points of the disagreement (``points``) against its own root."""
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    c: Claim = self.claims[claim_id]
    g: Game = self.games[claim_id]
    assert g.phase < ONE_STEP, "state: one operator remains; the challenger names an element"
    assert block.timestamp < g.deadline, "timeout: the move deadline has passed"
    pts: DynArray[uint256, MAX_ARITY - 1] = self._points(g.lo, g.hi, c.per_layer)
    assert len(leaves) == len(pts) and len(proofs) == len(pts), "value: open exactly one leaf per cut point"
    root: bytes32 = c.root
    if g.phase == CLAIMANT_REVEALS:
        assert msg.sender == c.claimant, "unauthorized: the claimant moves now"
    else:
        assert msg.sender == g.challenger, "unauthorized: the challenger moves now"
        root = g.root
    for i: uint256 in range(MAX_ARITY - 1):
        if i >= len(pts):
            break
        assert self._merkle_ok(root, leaves[i], pts[i], proofs[i], c.n_ops + 1), \
            "value: an opening does not match the mover's root"
    if g.phase == CLAIMANT_REVEALS:
        self.claimant_points[claim_id] = leaves
        self.games[claim_id].phase = CHALLENGER_REVEALS
    else:
        theirs: DynArray[bytes32, MAX_ARITY - 1] = self.claimant_points[claim_id]
        lo: uint256 = g.lo
        agreed: bytes32 = g.agreed
        hi: uint256 = g.hi
        for i: uint256 in range(MAX_ARITY - 1):
            if i >= len(pts):
                break
            if leaves[i] != theirs[i]:
                hi = pts[i]
                self.games[claim_id].claimant_hi = theirs[i]
                self.games[claim_id].challenger_hi = leaves[i]
                break
            lo = pts[i]
            agreed = leaves[i]
        self.games[claim_id].lo = lo
        self.games[claim_id].hi = hi
        self.games[claim_id].agreed = agreed
        self.games[claim_id].rounds = g.rounds + 1
        self.games[claim_id].phase = CLAIMANT_REVEALS
        if hi == lo + 1:
            self.games[claim_id].phase = ONE_STEP
    self.games[claim_id].deadline = block.timestamp + self.move_timeout
    log Moved(claim_id=claim_id, lo=self.games[claim_id].lo, hi=self.games[claim_id].hi,
              phase=self.games[claim_id].phase)


@external
@nonreentrant
def challenge_element(claim_id: bytes32, i: uint256, j: uint256):
    """The challenger names element (i, j) of the claimant's output of the disputed operator."""
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    g: Game = self.games[claim_id]
    assert g.phase == ONE_STEP, "state: no operator to challenge"
    assert block.timestamp < g.deadline, "timeout: the move deadline has passed"
    assert msg.sender == g.challenger, "unauthorized: the challenger names the element"
    self.games[claim_id].ei = i
    self.games[claim_id].ej = j
    self.games[claim_id].phase = ELEMENT
    self.games[claim_id].deadline = block.timestamp + self.move_timeout
    log Moved(claim_id=claim_id, lo=g.lo, hi=g.hi, phase=ELEMENT)


@internal
def _opened(claim_id: bytes32, g: Game, op: Op, op_proof: DynArray[bytes32, MAX_DEPTH], f: Frame) -> bool:
    # decide's common checks: the job's operator, the agreed input. A malformed operator (or one the agreed
    # state cannot feed: OperatorStep.op_valid) is the claimant's, who committed to the job: the challenger
    # wins. Then the output state on trial (the claimant's, or in PROVE the challenger's). True: the game
    # is settled here (a malformed operator, or an element outside the output: the claimant's then)
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    c: Claim = self.claims[claim_id]
    assert g.phase >= ELEMENT, "state: no element has been named"
    assert block.timestamp < g.deadline, "timeout: the move deadline has passed"
    op_leaf: bytes32 = sha256(abi_encode(OPL_TAG, op.kind, op.k, op.m, op.bits, op.param_root))
    assert self._merkle_ok(c.ops_root, op_leaf, g.hi - 1, op_proof, c.n_ops), "value: not the job's operator"
    assert self._state(f.rows, f.dx, f.x_root, f.da, f.a_root) == g.agreed, "value: not the agreed input state"
    if not staticcall OperatorStep(self.op_step).op_valid(op.kind, op.k, op.m, op.bits, op.param_root, f.rows, f.dx,
                                                          f.da):
        self._settle(claim_id, False, 1)
        return True
    out_state: bytes32 = self._state(f.rows, f.dx, f.x_root, op.m, f.out_root)
    if op.kind == RESID:
        out_state = self._state(f.rows, op.m, f.out_root, op.m, f.out_root)
    on_trial: bytes32 = g.claimant_hi
    if g.phase == PROVE:
        on_trial = g.challenger_hi
    assert out_state == on_trial, "value: not the output state on trial"
    if g.ei >= f.rows or g.ej >= op.m:
        # the challenger named an element the output does not have
        self._judge(claim_id, g.phase, g.phase == ELEMENT)
        return True
    return False


@external
@nonreentrant
def decide_rows(claim_id: bytes32, op: Op, op_proof: DynArray[bytes32, MAX_DEPTH], f: Frame,
                rows: DynArray[DynArray[uint256, MAX_FW], MAX_T], out_row: DynArray[uint256, MAX_FW],
                out_proof: DynArray[bytes32, MAX_DEPTH]):
    """As ``decide``, for an ``av`` element: every row of the agreed ``a = [p | v]`` is sent (its root rebuilt),
    and element (i, c) of head h = c // dh is checked as ``p_i^h . v^h[:, c % dh]`` by FloatStep."""
    g: Game = self.games[claim_id]
    if self._opened(claim_id, g, op, op_proof, f):
        return
    assert op.kind == AV, "value: only an attention-times-values element is opened with every row"
    assert len(out_row) == op.m // 8, "value: row lengths"
    assert self._merkle_ok(f.out_root, self._row_digest(out_row, op.m), g.ei, out_proof, f.rows), \
        "value: out_row opening"
    root: bytes32 = empty(bytes32)
    ok: bool = False
    root, ok = staticcall OperatorStep(self.op_step).av_ok(rows, op.k, op.m, op.param_root, f.rows, g.ei, g.ej,
                                                            self._lane(out_row, g.ej), op.bits, self.float_step)
    assert root == f.a_root, "value: the rows are not the agreed a"
    self._judge(claim_id, g.phase, ok)


@external
@nonreentrant
def decide(claim_id: bytes32, op: Op, op_proof: DynArray[bytes32, MAX_DEPTH], f: Frame,
           a_row: DynArray[uint256, MAX_FW], a_proof: DynArray[bytes32, MAX_DEPTH],
           x_row: DynArray[uint256, MAX_FW], x_proof: DynArray[bytes32, MAX_DEPTH],
           p_col: DynArray[uint256, MAX_FW], p_proof: DynArray[bytes32, MAX_DEPTH], q_row: DynArray[uint256, MAX_FW],
           out_row: DynArray[uint256, MAX_FW], out_proof: DynArray[bytes32, MAX_DEPTH]):
    """Open the named element (i, j) of the claimant's output of operator hi and let the contract judge it.

    ``op`` is the operator's leaf (opened against the job's ``ops_root``), ``f`` the agreed
    input state's fields and the claimant's output tensor root: the agreed state must be
    ``(rows, dx, x_root, k, a_root)`` and the claimant's state hi the one the operator writes
    (only the written tensor may change). Then row i of the input activation (and, for a
    residual add, of x), the parameter (w's column j, or the bias row) and row i of the
    output are opened against those roots. The claimant wins if element j is within the
    operator's bound or (i, j) is outside the output, else the challenger. Anyone may call.
    """
    g: Game = self.games[claim_id]
    if self._opened(claim_id, g, op, op_proof, f):
        return
    assert op.kind != AV, "value: an attention-times-values element is opened with decide_rows"
    assert len(out_row) == op.m // 8, "value: row lengths"
    if op.kind != LN:
        # a layernorm reads x, every other operator a
        assert len(a_row) == op.k // 8, "value: row lengths"
        assert self._merkle_ok(f.a_root, self._row_digest(a_row, op.k), g.ei, a_proof, f.rows), \
            "value: a_row opening"
    assert self._merkle_ok(f.out_root, self._row_digest(out_row, op.m), g.ei, out_proof, f.rows), \
        "value: out_row opening"
    z: uint256 = self._lane(out_row, g.ej)
    ok: bool = False
    if op.kind == LIN:
        assert len(p_col) == op.k // 8, "value: w column length"
        assert self._merkle_ok(op.param_root, self._row_digest(p_col, op.k), g.ej, p_proof, op.m), \
            "value: w column opening"
        ok = staticcall FloatStep(self.float_step).within(a_row, p_col, op.k, op.bits, z)
    elif op.kind == BIAS:
        assert len(p_col) == op.m // 8 and self._row_digest(p_col, op.m) == op.param_root, "value: bias row"
        ok = staticcall OperatorStep(self.op_step).add_ok(self._lane(a_row, g.ej), self._lane(p_col, g.ej), z,
                                                           op.bits)
    elif op.kind == GELU:
        ok = staticcall OperatorStep(self.op_step).gelu_ok(self._lane(a_row, g.ej), z, op.bits)
    elif op.kind == RELU:
        ok = staticcall OperatorStep(self.op_step).relu_ok(self._lane(a_row, g.ej), z)
    elif op.kind == QK:
        # the key row j mod T of the agreed a, opened as p_col
        assert len(p_col) == op.k // 8 and self._merkle_ok(
            f.a_root, self._row_digest(p_col, op.k), g.ej % max(convert(op.param_root, uint256) & 4294967295, 1),
            p_proof, f.rows), "value: key row opening"
        ok = staticcall OperatorStep(self.op_step).qk_ok(a_row, p_col, op.k, op.m, op.param_root, f.rows, g.ei, g.ej,
                                                          z, op.bits, self.float_step)
    elif op.kind == SOFTMAX:
        # param: span << 32 | block << 1 | causal; lanes from span on are copied bit for bit
        sp: uint256 = convert(op.param_root, uint256)
        if g.ej >= sp >> 32:
            ok = z == self._lane(a_row, g.ej)
        else:
            ok = staticcall OperatorStep(self.op_step).softmax_ok(a_row, sp >> 32, (sp >> 1) & 2147483647, sp & 1 == 1,
                                                                   g.ei, g.ej, z, op.bits)
    elif op.kind >= MMS:
        ok = staticcall OperatorStep(self.op_step).block_ok(op.kind, op.k, op.bits, op.param_root, f.rows, f.a_root,
                                                             a_row, p_col, p_proof, g.ei, g.ej, z, self.float_step)
    else:
        assert len(x_row) == op.m // 8, "value: x row length"
        assert self._merkle_ok(f.x_root, self._row_digest(x_row, op.m), g.ei, x_proof, f.rows), "value: x_row opening"
        if op.kind == RESID:
            ok = staticcall OperatorStep(self.op_step).add_ok(self._lane(x_row, g.ej), self._lane(a_row, g.ej), z,
                                                               op.bits)
        else:
            assert len(p_col) == op.m // 8 and len(q_row) == op.m // 8, "value: gamma and beta rows"
            assert sha256(abi_encode(LNP_TAG, self._row_digest(p_col, op.m), self._row_digest(q_row, op.m))) \
                == op.param_root, "value: gamma and beta are not the operator's"
            ok = staticcall OperatorStep(self.op_step).ln_ok(x_row, op.m, self._lane(p_col, g.ej),
                                                              self._lane(q_row, g.ej), g.ej, z, op.bits)
    self._judge(claim_id, g.phase, ok)


@external
@nonreentrant
def timeout(claim_id: bytes32):
    """After a missed move deadline, the party that should have moved loses (anyone may call)."""
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    g: Game = self.games[claim_id]
    assert block.timestamp >= g.deadline, "timeout: the move deadline has not passed"
    # the claimant owes the openings and the element; the challenger its openings, the element's name and,
    # once the claimant's element is out of bound (or was not opened), its own element
    if g.phase >= ELEMENT:
        self._judge(claim_id, g.phase, False)
    else:
        self._settle(claim_id, g.phase == CHALLENGER_REVEALS or g.phase == ONE_STEP, 2)


@view
@external
def outcome(claim_id: bytes32) -> (uint8, address, bytes32, bytes32, uint256, address):
    """What an escrow settles on: ``(state, claimant, job_id, result, deadline, winner)`` of a claim."""
    c: Claim = self.claims[claim_id]
    return c.state, c.claimant, c.job_id, c.result, c.deadline, self.winner[claim_id]


@external
@nonreentrant
def finalize(claim_id: bytes32):
    """After the challenge window, with no dispute running, the claimant's bond comes back."""
    c: Claim = self.claims[claim_id]
    assert c.state == COMMITTED, "state: the claim is not committed or a dispute is running"
    assert block.timestamp >= c.deadline, "timeout: the challenge window is still open"
    self.claims[claim_id].state = FINALIZED
    self.credits[c.claimant] += c.bond


@external
@nonreentrant
def withdraw():
    """Send the caller its credited ether."""
    amount: uint256 = self.credits[msg.sender]
    assert amount > 0, "value: nothing to withdraw"
    self.credits[msg.sender] = 0
    self.held -= amount
    send(msg.sender, amount)
