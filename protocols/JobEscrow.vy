# pragma version ~=0.4.3
"""
@title JobEscrow
@notice One outsourced compute job as a state machine, paid in ether
        (see JobEscrow.md beside this file):
        post (payment) -> accept (provider stake) -> commit result hash ->
        challenge window -> release / finalize (provider paid, stake back)
                         or slash (stake to the beneficiary, payment back).
        Timeouts keep money moving when a party vanishes: an unaccepted job
        can be cancelled, a provider that never commits forfeits its stake,
        and a committed result is paid once the challenge window has passed
        even if consumer and verifier are gone.
        Money leaves only through withdraw() (pull payments): every
        transition credits balances, so no transition makes an external call,
        and withdraw() zeroes the credit before sending under a reentrancy lock.
        Every revert of a well-formed call carries a reason starting "state:",
        "unauthorized:", "time:" or "value:" (the lock and the ether checks too).
        Windows are at most MAX_WINDOW seconds, so no deadline sum can overflow.
        A job posted with post_disputed() names no verifier: its result is a claim
        of a Dispute.vy game (commit_claim), it finalizes only once that claim stands
        (its window over, no game running), and a lost game settles it (settle):
        the stake to the game's winner less the game's burn share, payment back.
        The game is only read (staticcall), so it can never re-enter, and it must be
        one of the games fixed at deploy (the constructor's allowlist, each with the
        code hash it had then): a consumer cannot name a game of its own (one that
        reports the claimant lost, a proxy, a Dispute.vy deployed with a one-second
        move timeout), and an allowed game whose code changed is refused.
        held <= the contract's balance: ether forced in without a call (a
        selfdestruct, a block reward) is surplus no transition credits; it stays
        in the contract, visible as surplus().
"""

UNUSED: constant(uint8) = 0
POSTED: constant(uint8) = 1
ACCEPTED: constant(uint8) = 2
COMMITTED: constant(uint8) = 3
FINALIZED: constant(uint8) = 4
SLASHED: constant(uint8) = 5
CANCELLED: constant(uint8) = 6
TIMED_OUT: constant(uint8) = 7

# games one escrow may trust (its constructor's allowlist)
MAX_GAMES: constant(uint256) = 4
# ~136 years: block.timestamp + three windows stays far below 2**256
MAX_WINDOW: constant(uint256) = 2 ** 32
# claim states of Dispute.vy
CLAIM_COMMITTED: constant(uint8) = 1
CLAIM_DISPUTED: constant(uint8) = 2
CLAIM_FINALIZED: constant(uint8) = 3
CLAIM_SLASHED: constant(uint8) = 4

interface DisputeGame:
    def outcome(claim_id: bytes32) -> (uint8, address, bytes32, bytes32, uint256, address): view
    def burn_bps() -> uint256: view
    def treasury() -> address: view

struct Job:
    consumer: address
    provider: address
    verifier: address
    beneficiary: address
    payment: uint256
    stake_required: uint256
    stake: uint256
    accept_by: uint256
    work_time: uint256
    result_by: uint256
    challenge_window: uint256
    committed_at: uint256
    result_hash: bytes32
    state: uint8

event Transition:
    job_id: indexed(bytes32)
    state: uint8
    actor: address

jobs: public(HashMap[bytes32, Job])
credits: public(HashMap[address, uint256])
# ether held for open jobs plus unwithdrawn credits; <= this contract's balance (see surplus())
held: public(uint256)
# the re-entrancy lock, by hand so that a re-entrant call reverts with a reason
_locked: bool
# jobs settled by a dispute game instead of a verifier: the game contract, the job spec
# (Dispute.vy's job id: operators, input, depth) and the provider's claim in that game
game: public(HashMap[bytes32, address])
spec: public(HashMap[bytes32, bytes32])
claim: public(HashMap[bytes32, bytes32])
# a lost game's share of the stake when the game has no treasury: locked here for ever
burned: public(uint256)
# the dispute games this escrow settles by, fixed at deploy, and each one's code hash then.
# An address, not a code hash alone: Dispute.vy keeps its parameters (treasury, burn share,
# move timeout, float step checker) in storage, so a copy with hostile parameters has the
# same code hash as the audited deployment.
GAMES: public(immutable(DynArray[address, MAX_GAMES]))
GAME_CODEHASHES: public(immutable(DynArray[bytes32, MAX_GAMES]))


@deploy
def __init__(games: DynArray[address, MAX_GAMES]):
    hashes: DynArray[bytes32, MAX_GAMES] = []
    for g: address in games:
        assert g.is_contract, "value: an allowed game must be a deployed contract"
        hashes.append(g.codehash)
    GAMES = games
    GAME_CODEHASHES = hashes


@internal
@view
def _check_game(game: address):
    """Refuse a game not on the allowlist, or one whose code is no longer what it was at deploy."""
    for i: uint256 in range(MAX_GAMES):
        if i >= len(GAMES):
            break
        if GAMES[i] == game:
            assert game.codehash == GAME_CODEHASHES[i], \
                "state: the game's code has changed since this escrow was deployed"
            return
    raise "unauthorized: the game is not one this escrow was deployed to trust"


@internal
@view
def _outcome(job_id: bytes32, claim_id: bytes32) -> (uint8, address, bytes32, bytes32, uint256, address):
    """The job's game's record of ``claim_id``, read only after the game is checked again."""
    game: address = self.game[job_id]
    self._check_game(game)
    return staticcall DisputeGame(game).outcome(claim_id)


@internal
def _enter():
    assert not self._locked, "state: re-entrant call refused"
    self._locked = True


@internal
def _exit():
    self._locked = False


@internal
def _to(job_id: bytes32, state: uint8):
    self.jobs[job_id].state = state
    log Transition(job_id=job_id, state=state, actor=msg.sender)


@internal
def _post(job_id: bytes32, verifier: address, beneficiary: address, stake_required: uint256,
          accept_window: uint256, work_time: uint256, challenge_window: uint256, payment: uint256):
    assert self.jobs[job_id].state == UNUSED, "state: job id already used"
    assert payment > 0, "value: a job must pay something"
    assert beneficiary != empty(address), "value: slashed stake needs a beneficiary"
    assert accept_window > 0 and work_time > 0 and challenge_window > 0, "value: windows must be positive"
    assert accept_window <= MAX_WINDOW and work_time <= MAX_WINDOW and challenge_window <= MAX_WINDOW, \
        "value: windows must be at most 2**32 seconds"
    self.jobs[job_id] = Job(consumer=msg.sender, provider=empty(address), verifier=verifier,
                            beneficiary=beneficiary, payment=payment, stake_required=stake_required, stake=0,
                            accept_by=block.timestamp + accept_window, work_time=work_time, result_by=0,
                            challenge_window=challenge_window, committed_at=0, result_hash=empty(bytes32),
                            state=UNUSED)
    self.held += payment
    self._to(job_id, POSTED)


@external
@payable
def post(job_id: bytes32, verifier: address, beneficiary: address, stake_required: uint256,
         accept_window: uint256, work_time: uint256, challenge_window: uint256):
    """Post a job paying msg.value; the verifier may release early or slash during the challenge window."""
    self._enter()
    assert verifier != empty(address) and verifier != msg.sender, "value: the verifier must be a third party"
    self._post(job_id, verifier, beneficiary, stake_required, accept_window, work_time, challenge_window,
               msg.value)
    self._exit()


@external
@payable
def post_disputed(job_id: bytes32, game: address, spec: bytes32, stake_required: uint256,
                  accept_window: uint256, work_time: uint256, challenge_window: uint256):
    """Post a job paying msg.value whose result is a claim on ``spec`` in the Dispute.vy ``game``.

    No verifier: anyone may dispute the claim in the game, and the game's outcome settles
    the job. The consumer is the beneficiary of a stake forfeited by a provider that never
    commits. A provider should accept only if ``game`` runs the audited Dispute.vy code.
    """
    self._enter()
    assert game.is_contract, "value: the game must be a deployed Dispute contract"
    self._check_game(game)
    assert spec != empty(bytes32), "value: the job spec (Dispute job id) is empty"
    self._post(job_id, empty(address), msg.sender, stake_required, accept_window, work_time, challenge_window,
               msg.value)
    self.game[job_id] = game
    self.spec[job_id] = spec
    self._exit()


@external
@payable
def cancel(job_id: bytes32):
    """The consumer takes back a job nobody has accepted."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == POSTED, "state: only a posted, unaccepted job can be cancelled"
    assert msg.sender == j.consumer, "unauthorized: only the consumer cancels"
    self.credits[j.consumer] += j.payment
    self._to(job_id, CANCELLED)
    self._exit()


@external
@payable
def accept(job_id: bytes32):
    """A provider takes the job, staking exactly the required amount."""
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == POSTED, "state: job is not open for acceptance"
    assert block.timestamp < j.accept_by, "time: the acceptance window has closed"
    assert msg.sender != j.consumer and msg.sender != j.verifier, "unauthorized: consumer and verifier cannot provide"
    assert msg.sender != j.beneficiary, "unauthorized: the beneficiary of slashed stake cannot provide"
    assert msg.value == j.stake_required, "value: send exactly the required stake"
    self.jobs[job_id].provider = msg.sender
    self.jobs[job_id].stake = msg.value
    self.jobs[job_id].result_by = block.timestamp + j.work_time
    self.held += msg.value
    self._to(job_id, ACCEPTED)
    self._exit()


@external
@payable
def commit_result(job_id: bytes32, result_hash: bytes32):
    """The provider commits to its result; the challenge window starts."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == ACCEPTED, "state: job is not awaiting a result"
    assert msg.sender == j.provider, "unauthorized: only the provider commits the result"
    assert block.timestamp < j.result_by, "time: the result deadline has passed"
    assert result_hash != empty(bytes32), "value: empty result hash"
    assert self.game[job_id] == empty(address), "state: this job settles by dispute; commit with commit_claim"
    self.jobs[job_id].result_hash = result_hash
    self.jobs[job_id].committed_at = block.timestamp
    self._to(job_id, COMMITTED)
    self._exit()


@external
@payable
def commit_claim(job_id: bytes32, claim_id: bytes32):
    """The provider commits its claim in the job's game; the challenge window starts.

    The claim must be the provider's, on the job's spec, open (COMMITTED, no game
    running), with at least ``challenge_window`` seconds of its dispute window left,
    so watchers have the whole window the consumer asked for.
    """
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == ACCEPTED, "state: job is not awaiting a result"
    assert msg.sender == j.provider, "unauthorized: only the provider commits the result"
    assert block.timestamp < j.result_by, "time: the result deadline has passed"
    game: address = self.game[job_id]
    assert game != empty(address), "state: this job has a verifier; commit with commit_result"
    state: uint8 = 0
    claimant: address = empty(address)
    spec: bytes32 = empty(bytes32)
    result: bytes32 = empty(bytes32)
    deadline: uint256 = 0
    winner: address = empty(address)
    state, claimant, spec, result, deadline, winner = self._outcome(job_id, claim_id)
    assert claimant == j.provider, "unauthorized: the claim is not the provider's"
    assert spec == self.spec[job_id], "value: the claim is on another job spec"
    assert state == CLAIM_COMMITTED, "state: the claim is not open (disputed, finalized or slashed)"
    assert deadline >= block.timestamp + j.challenge_window, \
        "time: the claim's dispute window ends before the job's challenge window"
    self.claim[job_id] = claim_id
    self.jobs[job_id].result_hash = result
    self.jobs[job_id].committed_at = block.timestamp
    self._to(job_id, COMMITTED)
    self._exit()


@internal
def _pay_provider(job_id: bytes32):
    j: Job = self.jobs[job_id]
    self.credits[j.provider] += j.payment + j.stake
    self._to(job_id, FINALIZED)


@external
@payable
def release(job_id: bytes32):
    """Consumer or verifier accept the committed result early: provider paid, stake returned."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == COMMITTED, "state: only a committed result can be released"
    assert self.game[job_id] == empty(address), \
        "state: a job settled by dispute is paid by finalize, once its claim stands"
    assert msg.sender == j.consumer or msg.sender == j.verifier, "unauthorized: only consumer or verifier release"
    self._pay_provider(job_id)
    self._exit()


@external
@payable
def finalize(job_id: bytes32):
    """Anyone: once the challenge window has passed unchallenged, the provider is paid."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == COMMITTED, "state: only a committed result can be finalized"
    assert block.timestamp >= j.committed_at + j.challenge_window, "time: the challenge window is still open"
    game: address = self.game[job_id]
    if game != empty(address):
        state: uint8 = 0
        claimant: address = empty(address)
        spec: bytes32 = empty(bytes32)
        result: bytes32 = empty(bytes32)
        deadline: uint256 = 0
        winner: address = empty(address)
        state, claimant, spec, result, deadline, winner = self._outcome(job_id, self.claim[job_id])
        assert state != CLAIM_DISPUTED, "state: a dispute of the claim is running; finalize after the game"
        assert state != CLAIM_SLASHED, "state: the claim lost its dispute; call settle"
        # COMMITTED past its deadline can no longer be disputed: Dispute.vy moves a
        # deadline only when a game ends, and a game needs one to start
        assert state == CLAIM_FINALIZED or block.timestamp >= deadline, \
            "time: the claim's dispute window is still open"
    self._pay_provider(job_id)
    self._exit()


@external
@payable
def slash(job_id: bytes32):
    """The verifier rejects the result within the challenge window: stake to the beneficiary,
    payment back to the consumer."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == COMMITTED, "state: only a committed result can be slashed"
    assert msg.sender == j.verifier, "unauthorized: only the job's verifier slashes"
    assert block.timestamp < j.committed_at + j.challenge_window, "time: the challenge window has closed"
    self.credits[j.beneficiary] += j.stake
    self.credits[j.consumer] += j.payment
    self._to(job_id, SLASHED)
    self._exit()


@external
@payable
def settle(job_id: bytes32):
    """Anyone: the provider's claim lost its game; the stake goes to the game's winner less
    the game's burn share (to its treasury, or burned), and the payment back to the consumer.
    If nobody won (both traces wrong), the whole stake is the share."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == COMMITTED, "state: only a committed result can be settled"
    game: address = self.game[job_id]
    assert game != empty(address), "state: this job has a verifier, not a dispute game"
    state: uint8 = 0
    claimant: address = empty(address)
    spec: bytes32 = empty(bytes32)
    result: bytes32 = empty(bytes32)
    deadline: uint256 = 0
    winner: address = empty(address)
    state, claimant, spec, result, deadline, winner = self._outcome(job_id, self.claim[job_id])
    assert state == CLAIM_SLASHED, "state: the claim has not lost a dispute"
    share: uint256 = j.stake
    if winner != empty(address):
        share = j.stake * min(staticcall DisputeGame(game).burn_bps(), 10000) // 10000
        self.credits[winner] += j.stake - share
    treasury: address = staticcall DisputeGame(game).treasury()
    if treasury == empty(address):
        self.burned += share
        self.held -= share
    else:
        self.credits[treasury] += share
    self.credits[j.consumer] += j.payment
    self._to(job_id, SLASHED)
    self._exit()


@external
@payable
def timeout(job_id: bytes32):
    """Anyone: the provider accepted but never committed in time; it forfeits its stake
    to the beneficiary and the consumer gets its payment back."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    j: Job = self.jobs[job_id]
    assert j.state == ACCEPTED, "state: only an accepted, uncommitted job can time out"
    assert block.timestamp >= j.result_by, "time: the provider still has time"
    self.credits[j.beneficiary] += j.stake
    self.credits[j.consumer] += j.payment
    self._to(job_id, TIMED_OUT)
    self._exit()


@external
@payable
def withdraw():
    """Send the caller its credited ether (checks-effects-interactions, under the lock)."""
    assert msg.value == 0, "value: this call takes no ether"
    self._enter()
    amount: uint256 = self.credits[msg.sender]
    assert amount > 0, "value: nothing to withdraw"
    self.credits[msg.sender] = 0
    self.held -= amount
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "value: the receiver refused the ether; withdraw to an address that accepts it"
    self._exit()


@external
@view
def surplus() -> uint256:
    """Ether in the contract beyond ``held`` and ``burned``: forced in without a call (a selfdestruct or
    a block reward). No transition credits it and nobody can withdraw it."""
    return self.balance - self.held - self.burned


@external
@payable
def __default__():
    raise "state: unknown function; JobEscrow takes ether only through post() and accept()"
