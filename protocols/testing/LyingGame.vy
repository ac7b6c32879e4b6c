# pragma version ~=0.4.3
"""
@title LyingGame
@notice Test-only attacker for JobEscrow's dispute-settled jobs: a "game" a consumer
        deploys itself, which reports whatever claim the test sets up, then says the
        claim lost (SLASHED) to ``thief`` with no burn and ``thief`` as treasury, so an
        escrow that trusted it would hand the provider's stake to the consumer's sybil.
        JobEscrow must refuse it at post_disputed (it is not on the escrow's allowlist).
"""

claimant: public(address)
spec: public(bytes32)
thief: public(address)
lost: public(bool)
burn_bps: public(uint256)
treasury: public(address)


@deploy
def __init__(claimant: address, spec: bytes32, thief: address):
    self.claimant = claimant
    self.spec = spec
    self.thief = thief
    self.treasury = thief


@external
def set_lost(lost: bool):
    """From now on report the claim COMMITTED (open) or SLASHED (lost to ``thief``)."""
    self.lost = lost


@external
@view
def outcome(claim_id: bytes32) -> (uint8, address, bytes32, bytes32, uint256, address):
    """The claim the test set: open with a far deadline, or lost to the thief."""
    if self.lost:
        return 4, self.claimant, self.spec, keccak256("result"), block.timestamp, self.thief
    return 1, self.claimant, self.spec, keccak256("result"), block.timestamp + 10**9, empty(address)
