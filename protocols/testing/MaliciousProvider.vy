# pragma version ~=0.4.3
"""
@title MaliciousProvider
@notice Test-only attacker for JobEscrow: a provider contract whose ether
        receiver tries to re-enter withdraw(), release() and finalize() to be
        paid twice. Records how many re-entries it tried and how many succeeded.
"""

interface JobEscrow:
    def accept(job_id: bytes32): payable
    def commit_result(job_id: bytes32, result_hash: bytes32): nonpayable
    def withdraw(): nonpayable

target: public(address)
job: public(bytes32)
attempts: public(uint256)
reentered: public(uint256)
received: public(uint256)


@deploy
def __init__(target: address):
    self.target = target


@external
@payable
def accept(job_id: bytes32):
    self.job = job_id
    extcall JobEscrow(self.target).accept(job_id, value=msg.value)


@external
def commit(result_hash: bytes32):
    extcall JobEscrow(self.target).commit_result(self.job, result_hash)


@external
def cash_out():
    extcall JobEscrow(self.target).withdraw()


@external
@payable
def __default__():
    self.received += msg.value
    if self.attempts < 3:
        self.attempts += 1
        ok: bool = False
        out: Bytes[32] = b""
        ok, out = raw_call(self.target, method_id("withdraw()"), max_outsize=32, revert_on_failure=False)
        if ok:
            self.reentered += 1
        ok, out = raw_call(self.target, concat(method_id("release(bytes32)"), self.job), max_outsize=32,
                           revert_on_failure=False)
        if ok:
            self.reentered += 1
        ok, out = raw_call(self.target, concat(method_id("finalize(bytes32)"), self.job), max_outsize=32,
                           revert_on_failure=False)
        if ok:
            self.reentered += 1
