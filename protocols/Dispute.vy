# pragma version ~=0.4.3
"""
@title Dispute
@notice Refereed delegation without a trusted verifier (see Dispute.md beside this file):
        a claimant commits a trace root (a Merkle root over the states of a
        quantised int8 network's forward pass) with a bond; within the
        challenge window a challenger disputes it with its own trace root and
        an equal bond; the two bisect their disagreement, each opening its
        leaf at the midpoint against its own root within a move timeout; when
        one layer remains whose input both agree on and whose output they
        dispute, the contract decides it: the int8 layer is checked here with
        Freivalds over F_p (p = 2^127 - 1), r derived from a blockhash fixed
        after both roots. The loser's bond goes to the winner, less a
        configurable share that goes to the treasury (burned if none).
        A float32 job (commit_float) ends instead with the challenger naming one
        element of the claimant's last-step output and the claimant opening it:
        FloatStep.vy recomputes its dot product exactly and holds the value to the
        operator's rounding bound. A claimant that cannot open it loses.
        Money leaves only through withdraw() (pull payments).
        Revert reasons start with "state:", "unauthorized:", "timeout:", "value:".
"""

# claim states
UNUSED: constant(uint8) = 0
COMMITTED: constant(uint8) = 1
DISPUTED: constant(uint8) = 2
FINALIZED: constant(uint8) = 3
SLASHED: constant(uint8) = 4
# game phases (whose move it is)
CLAIMANT_REVEALS: constant(uint8) = 1
CHALLENGER_REVEALS: constant(uint8) = 2
ONE_STEP: constant(uint8) = 3
ELEMENT: constant(uint8) = 4  # float32: the challenger named an element, the claimant must open it

P: constant(uint256) = 2**127 - 1
MAX_DIM: constant(uint256) = 256
MAX_W8: constant(uint256) = 2048      # int8 words of a MAX_DIM x MAX_DIM tensor (32 lanes a word)
MAX_W32: constant(uint256) = 8192     # int32 words of a MAX_DIM x MAX_DIM tensor (8 lanes a word)
MAX_DEPTH: constant(uint256) = 64
MAX_ARITY: constant(uint256) = 16
JOB_TAG: constant(uint256) = 1  # domain tag "vcd-job"
STATE_TAG: constant(uint256) = 2  # domain tag "vcd-state"
T8_TAG: constant(uint256) = 3  # domain tag "vcd-i8"
T32_TAG: constant(uint256) = 4  # domain tag "vcd-i32"
OP_TAG: constant(uint256) = 5  # domain tag "vcd-op"
FJOB_TAG: constant(uint256) = 6  # a float32 job id
FSTATE_TAG: constant(uint256) = 7  # a float32 state: Merkle root over its rows
FROW_TAG: constant(uint256) = 8  # one float32 row (or operator column)
FOP_TAG: constant(uint256) = 9  # a float32 operator: Merkle root over its columns, and its u_bits
MAX_FW: constant(uint256) = MAX_DIM // 8  # float32 words of one row (8 lanes a word)
# claim kinds: how the last step is decided
INT8: constant(uint8) = 0
FLOAT32: constant(uint8) = 1

interface FloatStep:
    def within(x: DynArray[uint256, MAX_FW], w: DynArray[uint256, MAX_FW], k: uint256, u_bits: uint256,
               z: uint256) -> bool: view

struct Claim:
    claimant: address
    job_id: bytes32
    ops_root: bytes32
    input_digest: bytes32
    n_layers: uint256
    root: bytes32
    result: bytes32
    bond: uint256
    window: uint256
    deadline: uint256
    state: uint8
    kind: uint8

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
    seed: bytes32
    rounds: uint256
    ei: uint256
    ej: uint256

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
    how: uint8   # 1 one-step check, 2 move timeout, 3 nobody proved the step

claims: public(HashMap[bytes32, Claim])
games: public(HashMap[bytes32, Game])
# who won the game that SLASHED a claim (empty: nobody proved the last step); read by JobEscrow
winner: public(HashMap[bytes32, address])
credits: public(HashMap[address, uint256])
held: public(uint256)
burned: public(uint256)
treasury: public(address)
burn_bps: public(uint256)
move_timeout: public(uint256)
arity: public(uint256)
# the claimant's openings of the current round, compared with the challenger's
claimant_points: HashMap[bytes32, DynArray[bytes32, MAX_ARITY - 1]]
min_bond: public(uint256)
# the float32 step checker (FloatStep.vy); empty: float jobs cannot be committed
float_step: public(address)


@deploy
def __init__(treasury: address, burn_bps: uint256, move_timeout: uint256, min_bond: uint256, arity: uint256,
             float_step: address):
    assert burn_bps <= 10000, "value: burn_bps is at most 10000"
    assert move_timeout > 0, "value: move_timeout must be positive"
    self.treasury = treasury
    self.burn_bps = burn_bps
    self.move_timeout = move_timeout
    self.min_bond = min_bond
    assert arity >= 2 and arity <= MAX_ARITY, "value: arity must be in 2..MAX_ARITY"
    self.arity = arity
    self.float_step = float_step


@pure
@external
def job_id_of(ops_root: bytes32, input_digest: bytes32, n_layers: uint256) -> bytes32:
    """The job id a claim must name: sha256 of its spec (operators, input, depth)."""
    return sha256(abi_encode(JOB_TAG, ops_root, input_digest, n_layers))


@pure
@external
def float_job_id_of(ops_root: bytes32, input_digest: bytes32, n_layers: uint256) -> bytes32:
    """The job id of a float32 job (another domain tag: a claim cannot pass one kind for the other)."""
    return sha256(abi_encode(FJOB_TAG, ops_root, input_digest, n_layers))


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
        # the claim stays open for other challengers; the window restarts so that one
        # colluding loser cannot run out the clock on an honest watcher
        self.claims[claim_id].deadline = max(c.deadline, block.timestamp + c.window)
        self.claims[claim_id].state = COMMITTED
        log Settled(claim_id=claim_id, winner=c.claimant, loser=g.challenger, how=how)
    else:
        self._credit_win(g.challenger, c.bond, c.bond)
        self.claims[claim_id].state = SLASHED
        self.winner[claim_id] = g.challenger
        log Settled(claim_id=claim_id, winner=g.challenger, loser=c.claimant, how=how)


@internal
@payable
def _commit(kind: uint8, ops_root: bytes32, input_digest: bytes32, n_layers: uint256, root: bytes32,
            result: bytes32, result_proof: DynArray[bytes32, MAX_DEPTH], window: uint256) -> bytes32:
    assert n_layers > 0 and n_layers < 2**32, "value: n_layers must be in 1..2**32-1"
    assert window > 0, "value: the challenge window must be positive"
    assert msg.value >= self.min_bond and msg.value > 0, "value: the bond is below min_bond"
    job_id: bytes32 = sha256(abi_encode(JOB_TAG if kind == INT8 else FJOB_TAG, ops_root, input_digest, n_layers))
    claim_id: bytes32 = sha256(abi_encode(job_id, msg.sender))
    assert self.claims[claim_id].state == UNUSED, "state: this claimant already committed for this job"
    assert self._merkle_ok(root, result, n_layers, result_proof, n_layers + 1), \
        "value: the result is not the last leaf of the root"
    self.claims[claim_id] = Claim(claimant=msg.sender, job_id=job_id, ops_root=ops_root,
                                  input_digest=input_digest, n_layers=n_layers, root=root, result=result,
                                  bond=msg.value, window=window, deadline=block.timestamp + window,
                                  state=COMMITTED, kind=kind)
    self.held += msg.value
    log Committed(claim_id=claim_id, claimant=msg.sender, root=root)
    return claim_id


@internal
def _forfeit_both(claim_id: bytes32):
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
def commit(ops_root: bytes32, input_digest: bytes32, n_layers: uint256, root: bytes32, result: bytes32,
           result_proof: DynArray[bytes32, MAX_DEPTH], window: uint256) -> bytes32:
    """Commit a trace root (n_layers + 1 leaves: input, then each layer's state) and its result leaf, with a bond."""
    return self._commit(INT8, ops_root, input_digest, n_layers, root, result, result_proof, window)


@external
@payable
@nonreentrant
def commit_float(ops_root: bytes32, input_digest: bytes32, n_layers: uint256, root: bytes32, result: bytes32,
                 result_proof: DynArray[bytes32, MAX_DEPTH], window: uint256) -> bytes32:
    """Commit the trace root of a float32 job (its last step decided by ``decide_float``), with a bond."""
    assert self.float_step != empty(address), "state: no float step checker"
    return self._commit(FLOAT32, ops_root, input_digest, n_layers, root, result, result_proof, window)


@internal
def _enter_one_step(claim_id: bytes32):
    # r is derived from a blockhash that exists only after both roots were committed
    g: Game = self.games[claim_id]
    self.games[claim_id].phase = ONE_STEP
    self.games[claim_id].seed = sha256(abi_encode(self.claims[claim_id].root, g.root, g.lo,
                                                  blockhash(block.number - 1)))


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
    assert self._merkle_ok(root, result, c.n_layers, result_proof, c.n_layers + 1), \
        "value: the result is not the last leaf of the root"
    self.held += msg.value
    self.claims[claim_id].state = DISPUTED
    self.games[claim_id] = Game(challenger=msg.sender, root=root, lo=0, hi=c.n_layers, agreed=c.input_digest,
                                claimant_hi=c.result, challenger_hi=result,
                                phase=CLAIMANT_REVEALS, deadline=block.timestamp + self.move_timeout,
                                seed=empty(bytes32), rounds=0, ei=0, ej=0)
    if c.n_layers == 1:
        self._enter_one_step(claim_id)
    log Disputed(claim_id=claim_id, challenger=msg.sender, root=root)


@view
@internal
def _points(lo: uint256, hi: uint256) -> DynArray[uint256, MAX_ARITY - 1]:
    # s = min(arity, hi - lo) segments; the cut points lie strictly between lo and hi
    s: uint256 = min(self.arity, hi - lo)
    out: DynArray[uint256, MAX_ARITY - 1] = []
    for i: uint256 in range(1, MAX_ARITY):
        if i >= s:
            break
        out.append(lo + (hi - lo) * i // s)
    return out


@view
@external
def points(claim_id: bytes32) -> DynArray[uint256, MAX_ARITY - 1]:
    """The leaf indices the mover must open now (the cut points of the disagreement)."""
    g: Game = self.games[claim_id]
    return self._points(g.lo, g.hi)


@external
@nonreentrant
def reveal(claim_id: bytes32, leaves: DynArray[bytes32, MAX_ARITY - 1],
           proofs: DynArray[DynArray[bytes32, MAX_DEPTH], MAX_ARITY - 1]):
    """Open the caller's leaves at the cut points of the disagreement (``points``) against its own root."""
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    c: Claim = self.claims[claim_id]
    g: Game = self.games[claim_id]
    assert g.phase < ONE_STEP, "state: one step remains; call decide"
    assert block.timestamp < g.deadline, "timeout: the move deadline has passed"
    pts: DynArray[uint256, MAX_ARITY - 1] = self._points(g.lo, g.hi)
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
        assert self._merkle_ok(root, leaves[i], pts[i], proofs[i], c.n_layers + 1), \
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
                # the first cut point they disagree on is the new hi
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
            self._enter_one_step(claim_id)
    self.games[claim_id].deadline = block.timestamp + self.move_timeout
    log Moved(claim_id=claim_id, lo=self.games[claim_id].lo, hi=self.games[claim_id].hi,
              phase=self.games[claim_id].phase)


@external
@nonreentrant
def timeout(claim_id: bytes32):
    """After a missed move deadline, the party that should have moved loses (anyone may call)."""
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    g: Game = self.games[claim_id]
    assert block.timestamp >= g.deadline, "timeout: the move deadline has not passed"
    if g.phase == CLAIMANT_REVEALS:
        self._settle(claim_id, False, 2)
    elif g.phase == CHALLENGER_REVEALS:
        self._settle(claim_id, True, 2)
    elif g.phase == ELEMENT:
        # the claimant did not open the element the challenger named
        self._settle(claim_id, False, 2)
    elif self.claims[claim_id].kind == FLOAT32:
        # the challenger named no element of the claimant's float step to check
        self._settle(claim_id, True, 2)
    else:
        # neither party proved its output of the last step: neither is honest; both bonds forfeit
        self._forfeit_both(claim_id)


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
def decide(claim_id: bytes32, rows: uint256, k: uint256, m: uint256, sh: uint256,
           x: DynArray[uint256, MAX_W8], w: DynArray[uint256, MAX_W8], z: DynArray[uint256, MAX_W32],
           y: DynArray[uint256, MAX_W8], z_in: bytes32, op_proof: DynArray[bytes32, MAX_DEPTH]):
    """Decide the last step: x (rows x k, int8) times layer hi's w (k x m, int8) gives z (int32), y = clip(z >> sh).

    Tensors are packed row-major, biased (int8 + 128 in 8-bit lanes, int32 + 2^31 in 32-bit
    lanes), lane t of a word at bits [t*width, (t+1)*width). z_in is the accumulator digest
    inside the agreed input state (zero for the job's input). Anyone may call; the party
    whose committed output state equals the checked (z, y) wins.
    """
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    g: Game = self.games[claim_id]
    c: Claim = self.claims[claim_id]
    assert g.phase == ONE_STEP, "state: the bisection has not reached one step"
    assert block.timestamp < g.deadline, "timeout: the move deadline has passed"
    assert c.kind == INT8, "value: float claim; call decide_float"
    assert rows > 0 and k > 0 and m > 0 and rows <= MAX_DIM and k <= MAX_DIM and m <= MAX_DIM, \
        "value: dimensions must be in 1..MAX_DIM"
    assert k % 32 == 0 and m % 32 == 0, "value: k and m must be multiples of 32"
    assert sh <= 23, "value: the shift must be at most 23"
    assert len(x) == rows * k // 32 and len(w) == k * m // 32 and len(y) == rows * m // 32 \
        and len(z) == rows * m // 8, "value: tensor lengths do not match the dimensions"
    # the agreed input state
    x_d: bytes32 = sha256(abi_encode(T8_TAG, rows, k, x))
    assert sha256(abi_encode(STATE_TAG, z_in, x_d)) == g.agreed, "value: x is not the agreed input state"
    # the operator of layer hi, from the job's operator root
    w_d: bytes32 = sha256(abi_encode(OP_TAG, k, m, sh, w))
    assert self._merkle_ok(c.ops_root, w_d, g.hi - 1, op_proof, c.n_layers), \
        "value: w is not the job's operator for this layer"
    # which party's output this is (z and y were committed in the roots, before r existed)
    out: bytes32 = sha256(abi_encode(STATE_TAG, sha256(abi_encode(T32_TAG, rows, m, z)),
                                     sha256(abi_encode(T8_TAG, rows, m, y))))
    assert out == g.claimant_hi or out == g.challenger_hi, "value: the output state is neither party's"

    # Freivalds over F_p: z r == x (w r)
    r: uint256[MAX_DIM] = empty(uint256[MAX_DIM])
    rsum: uint256 = 0
    for j: uint256 in range(m, bound=MAX_DIM):
        rj: uint256 = convert(keccak256(abi_encode(g.seed, j)), uint256) % P
        r[j] = rj
        rsum = unsafe_add(rsum, rj)
    rsum = rsum % P
    # the loops below are the whole cost of a dispute: index arithmetic is unchecked (every
    # index is bounded by the length asserts above, and the array reads stay bounds-checked)
    wpr: uint256 = m // 32
    wr: uint256[MAX_DIM] = empty(uint256[MAX_DIM])
    wrsum: uint256 = 0
    for i: uint256 in range(k, bound=MAX_DIM):
        acc: uint256 = 0
        row: uint256 = unsafe_mul(i, wpr)
        for cw: uint256 in range(wpr, bound=MAX_DIM // 32):
            word: uint256 = w[unsafe_add(row, cw)]
            base: uint256 = unsafe_mul(cw, 32)
            # 32 lanes unrolled: a loop costs more than the arithmetic it runs
            acc = unsafe_add(acc, unsafe_mul(word & 255, r[base]))
            acc = unsafe_add(acc, unsafe_mul((word >> 8) & 255, r[unsafe_add(base, 1)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 16) & 255, r[unsafe_add(base, 2)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 24) & 255, r[unsafe_add(base, 3)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 32) & 255, r[unsafe_add(base, 4)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 40) & 255, r[unsafe_add(base, 5)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 48) & 255, r[unsafe_add(base, 6)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 56) & 255, r[unsafe_add(base, 7)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 64) & 255, r[unsafe_add(base, 8)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 72) & 255, r[unsafe_add(base, 9)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 80) & 255, r[unsafe_add(base, 10)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 88) & 255, r[unsafe_add(base, 11)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 96) & 255, r[unsafe_add(base, 12)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 104) & 255, r[unsafe_add(base, 13)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 112) & 255, r[unsafe_add(base, 14)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 120) & 255, r[unsafe_add(base, 15)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 128) & 255, r[unsafe_add(base, 16)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 136) & 255, r[unsafe_add(base, 17)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 144) & 255, r[unsafe_add(base, 18)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 152) & 255, r[unsafe_add(base, 19)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 160) & 255, r[unsafe_add(base, 20)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 168) & 255, r[unsafe_add(base, 21)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 176) & 255, r[unsafe_add(base, 22)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 184) & 255, r[unsafe_add(base, 23)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 192) & 255, r[unsafe_add(base, 24)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 200) & 255, r[unsafe_add(base, 25)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 208) & 255, r[unsafe_add(base, 26)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 216) & 255, r[unsafe_add(base, 27)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 224) & 255, r[unsafe_add(base, 28)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 232) & 255, r[unsafe_add(base, 29)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 240) & 255, r[unsafe_add(base, 30)]))
            acc = unsafe_add(acc, unsafe_mul((word >> 248) & 255, r[unsafe_add(base, 31)]))
        v: uint256 = (acc + 128 * (P - rsum)) % P
        wr[i] = v
        wrsum = unsafe_add(wrsum, v)
    wrsum = wrsum % P
    xpr: uint256 = k // 32
    zpr: uint256 = m // 8
    ypr: uint256 = m // 32
    # requantisation in the biased domain: with u = z + 2^31 and sh <= 23,
    # clip(floor(z / 2^sh), -128, 127) + 128 == clip((u >> sh) - low, 0, 255), low = 2^(31 - sh) - 128
    low: uint256 = 2 ** (31 - sh) - 128
    for a: uint256 in range(rows, bound=MAX_DIM):
        lhs: uint256 = 0
        xrow: uint256 = unsafe_mul(a, xpr)
        for cw: uint256 in range(xpr, bound=MAX_DIM // 32):
            word: uint256 = x[unsafe_add(xrow, cw)]
            base: uint256 = unsafe_mul(cw, 32)
            lhs = unsafe_add(lhs, unsafe_mul(word & 255, wr[base]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 8) & 255, wr[unsafe_add(base, 1)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 16) & 255, wr[unsafe_add(base, 2)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 24) & 255, wr[unsafe_add(base, 3)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 32) & 255, wr[unsafe_add(base, 4)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 40) & 255, wr[unsafe_add(base, 5)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 48) & 255, wr[unsafe_add(base, 6)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 56) & 255, wr[unsafe_add(base, 7)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 64) & 255, wr[unsafe_add(base, 8)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 72) & 255, wr[unsafe_add(base, 9)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 80) & 255, wr[unsafe_add(base, 10)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 88) & 255, wr[unsafe_add(base, 11)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 96) & 255, wr[unsafe_add(base, 12)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 104) & 255, wr[unsafe_add(base, 13)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 112) & 255, wr[unsafe_add(base, 14)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 120) & 255, wr[unsafe_add(base, 15)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 128) & 255, wr[unsafe_add(base, 16)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 136) & 255, wr[unsafe_add(base, 17)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 144) & 255, wr[unsafe_add(base, 18)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 152) & 255, wr[unsafe_add(base, 19)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 160) & 255, wr[unsafe_add(base, 20)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 168) & 255, wr[unsafe_add(base, 21)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 176) & 255, wr[unsafe_add(base, 22)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 184) & 255, wr[unsafe_add(base, 23)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 192) & 255, wr[unsafe_add(base, 24)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 200) & 255, wr[unsafe_add(base, 25)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 208) & 255, wr[unsafe_add(base, 26)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 216) & 255, wr[unsafe_add(base, 27)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 224) & 255, wr[unsafe_add(base, 28)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 232) & 255, wr[unsafe_add(base, 29)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 240) & 255, wr[unsafe_add(base, 30)]))
            lhs = unsafe_add(lhs, unsafe_mul((word >> 248) & 255, wr[unsafe_add(base, 31)]))
        lhs = (lhs + 128 * (P - wrsum)) % P
        rhs: uint256 = 0
        zrow: uint256 = unsafe_mul(a, zpr)
        yrow: uint256 = unsafe_mul(a, ypr)
        yw: uint256 = 0
        lane: uint256 = 0
        q: uint256 = 0
        for cw: uint256 in range(zpr, bound=MAX_DIM // 8):
            word: uint256 = z[unsafe_add(zrow, cw)]
            base: uint256 = unsafe_mul(cw, 8)
            yw = y[unsafe_add(yrow, cw // 4)] >> unsafe_mul(cw % 4, 64)
            lane = word & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[base]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == yw & 255, "value: y is not the requantised z"
            lane = (word >> 32) & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[unsafe_add(base, 1)]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == (yw >> 8) & 255, "value: y is not the requantised z"
            lane = (word >> 64) & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[unsafe_add(base, 2)]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == (yw >> 16) & 255, "value: y is not the requantised z"
            lane = (word >> 96) & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[unsafe_add(base, 3)]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == (yw >> 24) & 255, "value: y is not the requantised z"
            lane = (word >> 128) & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[unsafe_add(base, 4)]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == (yw >> 32) & 255, "value: y is not the requantised z"
            lane = (word >> 160) & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[unsafe_add(base, 5)]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == (yw >> 40) & 255, "value: y is not the requantised z"
            lane = (word >> 192) & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[unsafe_add(base, 6)]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == (yw >> 48) & 255, "value: y is not the requantised z"
            lane = (word >> 224) & 4294967295
            rhs = unsafe_add(rhs, unsafe_mul(lane, r[unsafe_add(base, 7)]))
            q = lane >> sh
            q = 0 if q < low else min(unsafe_sub(q, low), 255)
            assert q == (yw >> 56) & 255, "value: y is not the requantised z"
        rhs = (rhs + 2147483648 * (P - rsum)) % P
        assert lhs == rhs, "value: Freivalds check failed: z != x w"
    self._settle(claim_id, out == g.claimant_hi, 1)


@pure
@internal
def _row_digest(words: DynArray[uint256, MAX_FW], n: uint256) -> bytes32:
    return sha256(abi_encode(FROW_TAG, n, words))


@external
@nonreentrant
def challenge_element(claim_id: bytes32, i: uint256, j: uint256):
    """The challenger names element (i, j) of the claimant's float32 output at the disputed layer."""
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    g: Game = self.games[claim_id]
    assert g.phase == ONE_STEP and self.claims[claim_id].kind == FLOAT32, "state: no float step to challenge"
    assert block.timestamp < g.deadline, "timeout: the move deadline has passed"
    assert msg.sender == g.challenger, "unauthorized: the challenger names the element"
    self.games[claim_id].ei = i
    self.games[claim_id].ej = j
    self.games[claim_id].phase = ELEMENT
    self.games[claim_id].deadline = block.timestamp + self.move_timeout
    log Moved(claim_id=claim_id, lo=g.lo, hi=g.hi, phase=ELEMENT)


@external
@nonreentrant
def decide_float(claim_id: bytes32, rows: uint256, k: uint256, m: uint256, u_bits: uint256,
                 x_row: DynArray[uint256, MAX_FW], x_root: bytes32, x_proof: DynArray[bytes32, MAX_DEPTH],
                 w_col: DynArray[uint256, MAX_FW], w_root: bytes32, w_proof: DynArray[bytes32, MAX_DEPTH],
                 op_proof: DynArray[bytes32, MAX_DEPTH],
                 c_row: DynArray[uint256, MAX_FW], c_root: bytes32, c_proof: DynArray[bytes32, MAX_DEPTH]):
    """Open the named element (i, j) of the claimant's float32 output: row i of the agreed input x
    (rows x k), column j of layer hi's operator w (k x m) and row i of the claimant's output, each
    against its commitment, which fix the dimensions. The claimant wins if the element is within
    the operator's rounding bound (FloatStep.vy) or outside the output, else the challenger. Anyone
    may call (only the claimant's committed data can pass).
    """
    assert self.claims[claim_id].state == DISPUTED, "state: no dispute in progress"
    g: Game = self.games[claim_id]
    c: Claim = self.claims[claim_id]
    assert g.phase == ELEMENT, "state: no element has been named"
    assert block.timestamp < g.deadline, "timeout: the move deadline has passed"
    assert rows <= MAX_DIM and k <= MAX_DIM and m <= MAX_DIM and k % 8 == 0 and m % 8 == 0, \
        "value: dimensions out of range"
    assert sha256(abi_encode(FSTATE_TAG, rows, k, x_root)) == g.agreed, "value: x is not agreed"
    assert self._merkle_ok(c.ops_root, sha256(abi_encode(FOP_TAG, k, m, u_bits, w_root)), g.hi - 1, op_proof,
                           c.n_layers), "value: w is not the operator"
    assert sha256(abi_encode(FSTATE_TAG, rows, m, c_root)) == g.claimant_hi, "value: not the claimant's output"
    if g.ei >= rows or g.ej >= m:
        # the challenger named an element the output does not have
        self._settle(claim_id, True, 1)
        return
    assert len(x_row) == k // 8 and len(w_col) == k // 8 and len(c_row) == m // 8, "value: row lengths"
    assert self._merkle_ok(x_root, self._row_digest(x_row, k), g.ei, x_proof, rows), "value: x_row opening"
    assert self._merkle_ok(w_root, self._row_digest(w_col, k), g.ej, w_proof, m), "value: w_col opening"
    assert self._merkle_ok(c_root, self._row_digest(c_row, m), g.ei, c_proof, rows), "value: c_row opening"
    ok: bool = staticcall FloatStep(self.float_step).within(x_row, w_col, k, u_bits,
                                                           (c_row[g.ej // 8] >> (32 * (g.ej % 8))) & 4294967295)
    self._settle(claim_id, ok, 1)


@external
@nonreentrant
def withdraw():
    """Send the caller its credited ether."""
    amount: uint256 = self.credits[msg.sender]
    assert amount > 0, "value: nothing to withdraw"
    self.credits[msg.sender] = 0
    self.held -= amount
    send(msg.sender, amount)
