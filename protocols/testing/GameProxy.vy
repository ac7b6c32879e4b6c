# pragma version ~=0.4.3
"""
@title GameProxy
@notice Test-only attacker for JobEscrow's dispute-settled jobs: an upgradeable proxy in
        front of a game. What the escrow reads (outcome, burn_bps, treasury) is forwarded
        by DELEGATECALL to ``impl``, which its
        owner can switch at any time, so it can run the audited Dispute.vy code today
        and a lying game tomorrow. JobEscrow must refuse it: its address and code are
        not those of a game on the escrow's allowlist.
"""

impl: public(address)
owner: public(address)


@deploy
def __init__(impl: address):
    self.impl = impl
    self.owner = msg.sender


@external
def upgrade(impl: address):
    """Point the proxy at other code."""
    assert msg.sender == self.owner, "unauthorized: only the owner upgrades"
    self.impl = impl


@external
def outcome(claim_id: bytes32) -> (uint8, address, bytes32, bytes32, uint256, address):
    """Forwarded to ``impl`` by DELEGATECALL (its code, this proxy's storage)."""
    r: Bytes[192] = raw_call(self.impl, abi_encode(claim_id, method_id=method_id("outcome(bytes32)")),
                             max_outsize=192, is_delegate_call=True)
    return abi_decode(r, (uint8, address, bytes32, bytes32, uint256, address))


@external
def burn_bps() -> uint256:
    """Forwarded to ``impl`` by DELEGATECALL."""
    r: Bytes[32] = raw_call(self.impl, method_id("burn_bps()"), max_outsize=32, is_delegate_call=True)
    return abi_decode(r, uint256)


@external
def treasury() -> address:
    """Forwarded to ``impl`` by DELEGATECALL."""
    r: Bytes[32] = raw_call(self.impl, method_id("treasury()"), max_outsize=32, is_delegate_call=True)
    return abi_decode(r, address)
