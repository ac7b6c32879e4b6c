# pragma version ~=0.4.3
"""
@title VLedger
@notice vcompute's ledger rules on the EVM: accounts bound to keys, balances,
        job escrow, provider stake (lock, slash, unbond, withdraw after a delay)
        and commitments. Every state-changing call carries a client-chosen
        op_id; a retry with the same request is a no-op, a reuse for a different
        request reverts. Revert reasons start with a category the Python client
        maps to its error classes: "unknown:", "notfound:", "unauthorized:",
        "funds:", "state:", "invalid:", "amount:", "conflict:".
        Account, escrow and commitment names are keccak256(name) on chain.
        The rules (and the order of their checks) mirror
        vcompute/ledger/state.py; tests/ledger runs both side by side.
"""

MAX_AMOUNT: constant(uint256) = 10 ** 18
MAX_SUPPLY: constant(uint256) = 2 ** 63 - 1

OPEN: constant(uint8) = 1
RELEASED: constant(uint8) = 2
REFUNDED: constant(uint8) = 3

struct Escrow:
    consumer: bytes32
    provider: bytes32
    verifier: bytes32
    amount: uint256
    deadline: uint256
    state: uint8
    locked: uint256

struct Stake:
    free: uint256
    locked: uint256
    unbonding: uint256
    ready_at: uint256

struct Commitment:
    owner: bytes32
    digest: bytes32
    metadata: String[4096]
    time: uint256

event Applied:
    actor: indexed(address)
    kind: String[16]
    seq: uint256

minter: public(address)
withdraw_delay: public(uint256)
supply: public(uint256)
seq: public(uint256)

addr_of: public(HashMap[bytes32, address])
id_of: public(HashMap[address, bytes32])
name_of: public(HashMap[bytes32, String[64]])
pubkey_of: public(HashMap[bytes32, bytes32])
balance_of: public(HashMap[bytes32, uint256])
account_count: public(uint256)
account_at: public(HashMap[uint256, bytes32])

escrows: public(HashMap[bytes32, Escrow])
stakes: public(HashMap[bytes32, Stake])
commitments: public(HashMap[bytes32, Commitment])
escrow_count: public(uint256)
escrow_at: public(HashMap[uint256, bytes32])
# keccak256(abi_encode(sender, op_id)) -> keccak256 of the request, and its seq + 1
op_request: public(HashMap[bytes32, bytes32])
op_seq: public(HashMap[bytes32, uint256])


@deploy
def __init__(withdraw_delay: uint256):
    self.minter = msg.sender
    self.withdraw_delay = withdraw_delay


@internal
@view
def _op_key(op_id: String[128]) -> bytes32:
    return keccak256(abi_encode(msg.sender, op_id))


@internal
def _replayed(op_id: String[128], req: bytes32) -> bool:
    assert len(op_id) > 0, "invalid: empty op_id"
    prev: bytes32 = self.op_request[self._op_key(op_id)]
    if prev == empty(bytes32):
        return False
    assert prev == req, "conflict: op_id reused by this key for a different request"
    return True


@internal
def _done(op_id: String[128], req: bytes32, kind: String[16]):
    k: bytes32 = self._op_key(op_id)
    self.op_request[k] = req
    self.op_seq[k] = self.seq + 1
    log Applied(actor=msg.sender, kind=kind, seq=self.seq)
    self.seq += 1


@internal
@view
def _actor() -> bytes32:
    a: bytes32 = self.id_of[msg.sender]
    assert a != empty(bytes32), "unknown: the signing key is bound to no account"
    return a


@internal
@view
def _need(acct: bytes32):
    assert self.addr_of[acct] != empty(address), "unknown: no such account"


@internal
@pure
def _amount(amount: uint256):
    assert amount > 0 and amount <= MAX_AMOUNT, "amount: must be in 1..10**18"


@external
def open_account(name: String[64], pubkey: bytes32, op_id: String[128]):
    req: bytes32 = keccak256(abi_encode("open_account", name, pubkey))
    if self._replayed(op_id, req):
        return
    acct: bytes32 = keccak256(name)
    assert self.addr_of[acct] == empty(address), "state: account name already exists"
    assert self.id_of[msg.sender] == empty(bytes32), "state: this key is already bound to an account"
    self.addr_of[acct] = msg.sender
    self.id_of[msg.sender] = acct
    self.name_of[acct] = name
    self.pubkey_of[acct] = pubkey
    self.account_at[self.account_count] = acct
    self.account_count += 1
    self._done(op_id, req, "open_account")


@external
def mint(to: bytes32, amount: uint256, op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("mint", to, amount))
    if self._replayed(op_id, req):
        return
    assert msg.sender == self.minter, "unauthorized: only the minter may mint"
    self._need(to)
    assert self.supply + amount <= MAX_SUPPLY, "amount: total supply would exceed 2**63-1"
    self.balance_of[to] += amount
    self.supply += amount
    self._done(op_id, req, "mint")


@external
def burn(amount: uint256, op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("burn", amount))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    assert self.balance_of[actor] >= amount, "funds: balance too small"
    self.balance_of[actor] -= amount
    self.supply -= amount
    self._done(op_id, req, "burn")


@external
def transfer(to: bytes32, amount: uint256, op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("transfer", to, amount))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    self._need(to)
    assert self.balance_of[actor] >= amount, "funds: balance too small"
    self.balance_of[actor] -= amount
    self.balance_of[to] += amount
    self._done(op_id, req, "transfer")


@external
def escrow_open(eid: bytes32, provider: bytes32, amount: uint256, deadline: uint256, verifier: bytes32,
                op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("escrow_open", eid, provider, amount, deadline, verifier))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    assert self.escrows[eid].state == 0, "state: escrow id already used"
    self._need(provider)
    if verifier != empty(bytes32):
        self._need(verifier)
    assert deadline > block.timestamp, "invalid: deadline is not after the ledger time"
    assert self.balance_of[actor] >= amount, "funds: balance too small"
    self.balance_of[actor] -= amount
    self.escrows[eid] = Escrow(consumer=actor, provider=provider, verifier=verifier, amount=amount,
                               deadline=deadline, state=OPEN, locked=0)
    self.escrow_at[self.escrow_count] = eid
    self.escrow_count += 1
    self._done(op_id, req, "escrow_open")


@internal
def _settle(eid: bytes32, release: bool):
    actor: bytes32 = self._actor()
    e: Escrow = self.escrows[eid]
    assert e.state != 0, "notfound: no such escrow"
    assert e.state == OPEN, "state: escrow already settled"
    if release:
        assert actor == e.consumer or actor == e.verifier, "unauthorized: only the consumer or verifier releases"
        self.balance_of[e.provider] += e.amount
        self.escrows[eid].state = RELEASED
    else:
        assert actor == e.verifier or (actor == e.consumer and block.timestamp >= e.deadline), \
            "unauthorized: verifier refunds any time, consumer only after the deadline"
        self.balance_of[e.consumer] += e.amount
        self.escrows[eid].state = REFUNDED
    if e.locked > 0:
        self.stakes[e.provider].free += e.locked
        self.stakes[e.provider].locked -= e.locked
        self.escrows[eid].locked = 0


@external
def escrow_release(eid: bytes32, op_id: String[128]):
    req: bytes32 = keccak256(abi_encode("escrow_release", eid))
    if self._replayed(op_id, req):
        return
    self._settle(eid, True)
    self._done(op_id, req, "escrow_release")


@external
def escrow_refund(eid: bytes32, op_id: String[128]):
    req: bytes32 = keccak256(abi_encode("escrow_refund", eid))
    if self._replayed(op_id, req):
        return
    self._settle(eid, False)
    self._done(op_id, req, "escrow_refund")


@external
def stake_deposit(amount: uint256, op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("stake_deposit", amount))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    assert self.balance_of[actor] >= amount, "funds: balance too small"
    self.balance_of[actor] -= amount
    self.stakes[actor].free += amount
    self._done(op_id, req, "stake_deposit")


@external
def stake_lock(eid: bytes32, amount: uint256, op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("stake_lock", eid, amount))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    e: Escrow = self.escrows[eid]
    assert e.state != 0, "notfound: no such escrow"
    assert e.provider == actor, "unauthorized: only the escrow's provider locks stake against it"
    assert e.state == OPEN, "state: stake can only be locked against an open escrow"
    assert self.stakes[actor].free >= amount, "funds: free stake too small"
    self.stakes[actor].free -= amount
    self.stakes[actor].locked += amount
    self.escrows[eid].locked += amount
    self._done(op_id, req, "stake_lock")


@external
def stake_slash(eid: bytes32, amount: uint256, to: bytes32, op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("stake_slash", eid, amount, to))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    e: Escrow = self.escrows[eid]
    assert e.state != 0, "notfound: no such escrow"
    assert e.verifier != empty(bytes32) and actor == e.verifier, "unauthorized: only the escrow's verifier slashes"
    self._need(to)
    assert e.state == OPEN, "state: slash before the escrow settles"
    assert e.locked >= amount, "funds: less stake locked than the slash"
    self.stakes[e.provider].locked -= amount
    self.escrows[eid].locked -= amount
    self.balance_of[to] += amount
    self._done(op_id, req, "stake_slash")


@external
def stake_unbond(amount: uint256, op_id: String[128]):
    self._amount(amount)
    req: bytes32 = keccak256(abi_encode("stake_unbond", amount))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    assert self.stakes[actor].free >= amount, "funds: free (unlocked) stake too small"
    self.stakes[actor].free -= amount
    self.stakes[actor].unbonding += amount
    self.stakes[actor].ready_at = block.timestamp + self.withdraw_delay
    self._done(op_id, req, "stake_unbond")


@external
def stake_withdraw(op_id: String[128]):
    req: bytes32 = keccak256(abi_encode("stake_withdraw"))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    s: Stake = self.stakes[actor]
    assert s.unbonding > 0, "state: no unbonding stake"
    assert block.timestamp >= s.ready_at, "state: unbonding stake not yet withdrawable"
    self.balance_of[actor] += s.unbonding
    self.stakes[actor].unbonding = 0
    self._done(op_id, req, "stake_withdraw")


@external
def commit(cid: bytes32, digest: bytes32, metadata: String[4096], op_id: String[128]):
    req: bytes32 = keccak256(abi_encode("commit", cid, digest, keccak256(metadata)))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    assert self.commitments[cid].owner == empty(bytes32), "state: commitment id already used"
    self.commitments[cid] = Commitment(owner=actor, digest=digest, metadata=metadata, time=block.timestamp)
    self._done(op_id, req, "commit")


@external
@view
def account_info(acct: bytes32) -> (address, bytes32, uint256, Stake):
    """Key address, Ed25519 public key, balance and stake of an account (address 0: no such account)."""
    return self.addr_of[acct], self.pubkey_of[acct], self.balance_of[acct], self.stakes[acct]


@external
@view
def escrow_info(eid: bytes32) -> (String[64], String[64], String[64], uint256, uint256, uint8, uint256):
    """An escrow with account names resolved (state 0: no such escrow)."""
    e: Escrow = self.escrows[eid]
    return self.name_of[e.consumer], self.name_of[e.provider], self.name_of[e.verifier], e.amount, e.deadline, \
        e.state, e.locked


@external
@view
def account_names(start: uint256) -> DynArray[String[64], 256]:
    """Up to 256 account names from index ``start`` (page through with start += 256)."""
    out: DynArray[String[64], 256] = []
    for i: uint256 in range(start, start + 256, bound=256):
        if i >= self.account_count:
            break
        out.append(self.name_of[self.account_at[i]])
    return out


@external
@view
def holdings() -> uint256:
    """Balances + open escrows + stakes, summed account by account and escrow by escrow
    (independently of ``supply``, so the two can be compared)."""
    total: uint256 = 0
    for i: uint256 in range(self.account_count, bound=100000):
        a: bytes32 = self.account_at[i]
        s: Stake = self.stakes[a]
        total += self.balance_of[a] + s.free + s.locked + s.unbonding
    for i: uint256 in range(self.escrow_count, bound=100000):
        e: Escrow = self.escrows[self.escrow_at[i]]
        if e.state == OPEN:
            total += e.amount
    return total
