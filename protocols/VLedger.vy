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
        vcompute/ledger/state.py, and the contract checks the canonical forms of
        vcompute/ledger/canonical.py byte for byte (names, op ids, metadata), so a
        request the Python rules refuse is refused here too when sent directly;
        tests/ledger runs both side by side.
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

BAD_NAME: constant(String[64]) = "invalid: a name is 1-64 characters of A-Za-z0-9_.:@-"
BAD_META: constant(String[96]) = "invalid: metadata must be canonical flat JSON (vcompute.ledger.canonical)"

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
# the Ed25519 signature binding the public key to this contract, chain, sender and name
# (checked by clients before sending and whenever they read the binding)
proof_of: public(HashMap[bytes32, Bytes[64]])
balance_of: public(HashMap[bytes32, uint256])
account_count: public(uint256)
account_at: public(HashMap[uint256, bytes32])

escrows: public(HashMap[bytes32, Escrow])
stakes: public(HashMap[bytes32, Stake])
commitments: public(HashMap[bytes32, Commitment])
# running totals: holdings() in O(1), independent of supply (which only mint and burn move)
balances_total: public(uint256)
escrowed_total: public(uint256)
staked_total: public(uint256)
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
@pure
def _name_char(c: uint256) -> bool:
    return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95 or c == 46 \
        or c == 58 or c == 64 or c == 45


@internal
@pure
def _check_name(name: String[64]):
    b: Bytes[64] = convert(name, Bytes[64])
    n: uint256 = len(b)
    assert n > 0, BAD_NAME
    for i: uint256 in range(64):
        if i >= n:
            break
        assert self._name_char(convert(slice(b, i, 1), uint256)), BAD_NAME


@internal
@pure
def _check_op_id(op_id: String[128]):
    b: Bytes[128] = convert(op_id, Bytes[128])
    n: uint256 = len(b)
    assert n > 0, "invalid: op_id must be 1-128 printable ASCII characters (empty)"
    for i: uint256 in range(128):
        if i >= n:
            break
        c: uint256 = convert(slice(b, i, 1), uint256)
        assert c >= 32 and c <= 126, "invalid: op_id must be 1-128 printable ASCII characters"


@internal
@pure
def _check_metadata(text: String[4096]):
    """The canonical encoding of vcompute.ledger.canonical.check_metadata, byte for byte:
    {"key":value,...} with keys names in strictly ascending order, values null, true,
    false, integers of at most 18 digits (no leading zeros, no -0) or strings of printable
    ASCII with \\" \\\\ and lowercase \\uXXXX escapes for code points >= 0xa0 (surrogates
    only as a high-low pair); no spaces."""
    m: Bytes[4096] = convert(text, Bytes[4096])
    n: uint256 = len(m)
    assert n >= 2, BAD_META
    assert convert(slice(m, 0, 1), uint256) == 123 and convert(slice(m, n - 1, 1), uint256) == 125, BAD_META
    if n == 2:
        return
    i: uint256 = 1
    pw1: uint256 = 0
    pw2: uint256 = 0
    c: uint256 = 0
    for _p: uint256 in range(1024):
        # a key: a name in quotes, after the previous key
        assert i < n and convert(slice(m, i, 1), uint256) == 34, BAD_META
        i += 1
        w1: uint256 = 0
        w2: uint256 = 0
        k: uint256 = 0
        for _k: uint256 in range(65):
            assert i < n, BAD_META
            c = convert(slice(m, i, 1), uint256)
            i += 1
            if c == 34:
                break
            assert k < 64 and self._name_char(c), BAD_META
            if k < 32:
                w1 |= c << (8 * (31 - k))
            else:
                w2 |= c << (8 * (63 - k))
            k += 1
        # zero-padded big-endian words compare like the names (name bytes are never 0)
        assert k > 0 and (w1 > pw1 or (w1 == pw1 and w2 > pw2)), \
            "invalid: metadata keys must be names in strictly ascending order"
        pw1 = w1
        pw2 = w2
        assert i < n and convert(slice(m, i, 1), uint256) == 58, BAD_META
        i += 1
        assert i < n, BAD_META
        c = convert(slice(m, i, 1), uint256)
        if c == 34:
            i += 1
            want_low: bool = False
            for _s: uint256 in range(4096):
                assert i < n, BAD_META
                c = convert(slice(m, i, 1), uint256)
                if c == 92:
                    assert i + 1 < n, BAD_META
                    e: uint256 = convert(slice(m, i + 1, 1), uint256)
                    if e == 34 or e == 92:
                        assert not want_low, BAD_META
                        i += 2
                    else:
                        assert e == 117 and i + 6 <= n, BAD_META
                        u: uint256 = 0
                        for h: uint256 in range(4):
                            d: uint256 = convert(slice(m, i + 2 + h, 1), uint256)
                            if d >= 48 and d <= 57:
                                u = u * 16 + d - 48
                            else:
                                assert d >= 97 and d <= 102, BAD_META
                                u = u * 16 + d - 87
                        if want_low:
                            assert u >= 56320 and u <= 57343, "invalid: metadata has a lone surrogate"
                            want_low = False
                        elif u >= 55296 and u <= 56319:
                            want_low = True
                        else:
                            assert u >= 160 and (u < 56320 or u > 57343), \
                                "invalid: metadata strings hold no control characters or lone surrogates"
                        i += 6
                else:
                    assert not want_low, "invalid: metadata has a lone surrogate"
                    i += 1
                    if c == 34:
                        break
                    assert c >= 32 and c <= 126, BAD_META
        elif c == 116:
            assert i + 4 <= n and convert(slice(m, i, 4), bytes4) == 0x74727565, BAD_META
            i += 4
        elif c == 102:
            assert i + 5 <= n and convert(slice(m, i, 5), bytes5) == 0x66616c7365, BAD_META
            i += 5
        elif c == 110:
            assert i + 4 <= n and convert(slice(m, i, 4), bytes4) == 0x6e756c6c, BAD_META
            i += 4
        else:
            neg: bool = c == 45
            if neg:
                i += 1
                assert i < n, BAD_META
                c = convert(slice(m, i, 1), uint256)
            assert c >= 48 and c <= 57, BAD_META
            i += 1
            if c == 48:
                assert not neg, BAD_META
            else:
                digits: uint256 = 1
                for _d: uint256 in range(18):
                    if i >= n:
                        break
                    c = convert(slice(m, i, 1), uint256)
                    if c < 48 or c > 57:
                        break
                    digits += 1
                    i += 1
                assert digits <= 18, "invalid: metadata integers need |v| < 10**18"
        assert i < n, BAD_META
        c = convert(slice(m, i, 1), uint256)
        if c == 125:
            assert i == n - 1, BAD_META
            return
        assert c == 44, BAD_META
        i += 1
    raise BAD_META


@internal
def _replayed(op_id: String[128], req: bytes32) -> bool:
    self._check_op_id(op_id)
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
def open_account(name: String[64], pubkey: bytes32, proof: Bytes[64], op_id: String[128]):
    self._check_name(name)
    req: bytes32 = keccak256(abi_encode("open_account", name, pubkey, proof))
    if self._replayed(op_id, req):
        return
    acct: bytes32 = keccak256(name)
    assert self.addr_of[acct] == empty(address), "state: account name already exists"
    assert self.id_of[msg.sender] == empty(bytes32), "state: this key is already bound to an account"
    self.addr_of[acct] = msg.sender
    self.id_of[msg.sender] = acct
    self.name_of[acct] = name
    self.pubkey_of[acct] = pubkey
    self.proof_of[acct] = proof
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
    self.balances_total += amount
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
    self.balances_total -= amount
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
def escrow_open(escrow_id: String[64], provider: bytes32, amount: uint256, deadline: uint256, verifier: bytes32,
                op_id: String[128]):
    self._check_name(escrow_id)
    self._amount(amount)
    eid: bytes32 = keccak256(escrow_id)
    req: bytes32 = keccak256(abi_encode("escrow_open", eid, provider, amount, deadline, verifier))
    if self._replayed(op_id, req):
        return
    actor: bytes32 = self._actor()
    assert self.escrows[eid].state == 0, "state: escrow id already used"
    self._need(provider)
    if verifier != empty(bytes32):
        self._need(verifier)
    # distinct roles: nobody verifies (and slashes) its own work or pays itself
    assert provider != actor, "invalid: the provider must not be the consumer"
    assert verifier == empty(bytes32) or (verifier != actor and verifier != provider), \
        "invalid: the verifier must be a third party, neither the consumer nor the provider"
    assert deadline > block.timestamp, "invalid: deadline is not after the ledger time"
    assert self.balance_of[actor] >= amount, "funds: balance too small"
    self.balance_of[actor] -= amount
    self.balances_total -= amount
    self.escrowed_total += amount
    self.escrows[eid] = Escrow(consumer=actor, provider=provider, verifier=verifier, amount=amount,
                               deadline=deadline, state=OPEN, locked=0)
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
        # after the deadline the provider may refund too: its locked stake's timeout path
        assert actor == e.verifier or ((actor == e.consumer or actor == e.provider) and block.timestamp >= e.deadline), \
            "unauthorized: verifier refunds any time, consumer or provider only after the deadline"
        self.balance_of[e.consumer] += e.amount
        self.escrows[eid].state = REFUNDED
    self.escrowed_total -= e.amount
    self.balances_total += e.amount
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
    self.balances_total -= amount
    self.staked_total += amount
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
    assert to != e.provider, "invalid: slashed stake cannot go to the provider (stake leaves by unbond + delay)"
    assert e.state == OPEN, "state: slash before the escrow settles"
    assert e.locked >= amount, "funds: less stake locked than the slash"
    self.stakes[e.provider].locked -= amount
    self.escrows[eid].locked -= amount
    self.balance_of[to] += amount
    self.staked_total -= amount
    self.balances_total += amount
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
    self.staked_total -= s.unbonding
    self.balances_total += s.unbonding
    self.stakes[actor].unbonding = 0
    self._done(op_id, req, "stake_withdraw")


@external
def commit(commitment_id: String[64], digest: bytes32, metadata: String[4096], op_id: String[128]):
    self._check_name(commitment_id)
    self._check_metadata(metadata)
    cid: bytes32 = keccak256(commitment_id)
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
    """Balances + open escrows + stakes, from running totals kept apart from ``supply``
    (so the two can be compared in O(1) however many escrows there are)."""
    return self.balances_total + self.escrowed_total + self.staked_total
