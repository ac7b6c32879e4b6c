"""The ``vcompute ledger`` subcommands: ``verify PATH`` and ``show URL``.

The lead's CLI calls :func:`add_parser` with its subparsers object.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="vcompute"); sub = p.add_subparsers()
    >>> add_parser(sub)
    >>> p.parse_args(["ledger", "verify", "x.db"]).path
    'x.db'
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "cmd_show", "cmd_verify"]


def add_parser(subparsers) -> None:
    """Add the ``ledger`` command group to an argparse ``subparsers`` object.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.
    """
    led = subparsers.add_parser("ledger", help="inspect and verify ledgers",
                                description="Inspect and verify vcompute ledgers.")
    sub = led.add_subparsers(dest="ledger_command", metavar="SUBCOMMAND")
    v = sub.add_parser("verify", help="check a SQLite ledger's signed hash chain and the balances it implies",
                       description="Check every entry's signature and hash link, replay the log through the "
                                   "ledger rules, compare the implied state with the stored one and check "
                                   "that money is conserved. Exit status 0 if intact, 1 if broken.")
    v.add_argument("path", help="the ledger file (the path of a sqlite:/// URL)")
    v.set_defaults(func=cmd_verify)
    s = sub.add_parser("show", help="print the accounts, balances and stakes of a ledger",
                       description="Open a ledger URL (sqlite:///path.db, evm+http://host:port, ...) "
                                   "and print every account's balance and stake.")
    s.add_argument("url", help="a ledger URL, or a path to a SQLite ledger file")
    s.set_defaults(func=cmd_show)
    from vcompute.ledger.node import add_parser as add_node

    add_node(sub)  # `vcompute ledger node`: a local anvil for evm+http://
    led.set_defaults(func=lambda args: (led.print_help(), 2)[1])


def cmd_verify(args: argparse.Namespace) -> int:
    """``vcompute ledger verify PATH``: print the report; 0 if the chain is intact, else 1.

    Args:
        args: parsed arguments with ``path``.

    Returns:
        The exit status.
    """
    from vcompute.ledger.chain import verify_chain

    path = args.path[len("sqlite:///"):] if args.path.startswith("sqlite:///") else args.path
    report = verify_chain(path)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_show(args: argparse.Namespace) -> int:
    """``vcompute ledger show URL``: a table of accounts; 2 if the ledger cannot be opened.

    Args:
        args: parsed arguments with ``url``.

    Returns:
        The exit status.
    """
    import os

    import vcompute.ledger as vl

    url = args.url if "://" in args.url else f"sqlite:///{args.url}"
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        print(f"error: no ledger file at {url[len('sqlite:///'):]}", file=sys.stderr)
        return 2
    try:
        minter = _stored_minter(url)
        led = vl.open(url, **({"minter": minter} if minter else {}))
    except vl.LedgerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with led:
        print(f"{'account':<24} {'balance':>14} {'stake free':>12} {'locked':>10} {'unbonding':>10}")
        for n in led.accounts():
            s = led.stake(n)
            print(f"{n:<24} {led.balance(n):>14} {s.free:>12} {s.locked:>10} {s.unbonding:>10}")
        print(f"total supply {led.total_supply()}, holdings {led.holdings()}")
    return 0


def _stored_minter(url: str) -> bytes | None:
    """A SQLite file remembers its minter: read it so ``show`` opens any file."""
    if not url.startswith("sqlite:///"):
        return None
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{url[len('sqlite:///'):]}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT v FROM meta WHERE k = 'minter'").fetchone()
        finally:
            db.close()
        return bytes.fromhex(row[0]) if row else None
    except sqlite3.Error:
        return None
