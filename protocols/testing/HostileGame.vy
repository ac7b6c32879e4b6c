# pragma version ~=0.4.3
"""
@title HostileGame
@notice Test-only attacker for JobEscrow's dispute-settled jobs: a "game" whose
        outcome() tries to re-enter the escrow (finalize, settle, withdraw) while
        the escrow reads it, then reports the claim the test set. JobEscrow reads a game
        only with staticcall, so every re-entry must fail; ``claimant`` is whatever
        the test sets, so the escrow accepts it as a claim.
"""

escrow: public(address)
job: public(bytes32)
claimant: public(address)
spec: public(bytes32)
state: public(uint8)
deadline: public(uint256)
burn_bps: public(uint256)
treasury: public(address)


@deploy
def __init__(escrow: address, claimant: address, spec: bytes32):
    self.escrow = escrow
    self.claimant = claimant
    self.spec = spec
    self.state = 1


@external
def set(job: bytes32, state: uint8, deadline: uint256):
    """Set the job to re-enter and the claim's state and deadline to report."""
    self.job = job
    self.state = state
    self.deadline = deadline


@external
def outcome(claim_id: bytes32) -> (uint8, address, bytes32, bytes32, uint256, address):
    """Try to re-enter the escrow three ways, then report the claim (deadline: now, so it stands)."""
    ok: bool = False
    for sig: Bytes[4] in [method_id("finalize(bytes32)"), method_id("settle(bytes32)")]:
        ok = raw_call(self.escrow, concat(sig, self.job), revert_on_failure=False)
    ok = raw_call(self.escrow, method_id("withdraw()"), revert_on_failure=False)
    return self.state, self.claimant, self.spec, keccak256("result"), self.deadline, self.claimant
