"""The ``vcompute ledger`` subcommands: ``verify PATH [--anchor FILE]``, ``checkpoint PATH`` and ``show URL``.

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

__all__ = ["add_parser", "cmd_checkpoint", "cmd_show", "cmd_verify"]


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
                                   "that money is conserved; with --anchor, check that the file still holds "
                                   "the anchored prefix (without one, a cut-back tail cannot be detected). "
                                   "Exit status 0 if intact, 1 if broken.")
    v.add_argument("path", help="the ledger file, taken literally (or a sqlite:/// URL)")
    v.add_argument("--anchor", metavar="FILE", help="a checkpoint JSON file (from `vcompute ledger checkpoint` "
                                                    "or Checkpoint.to_json) the file must extend")
    v.add_argument("--minter", metavar="HEX", help="the minter public key (64 hex digits) the file must have")
    v.set_defaults(func=cmd_verify)
    c = sub.add_parser("checkpoint", help="verify a SQLite ledger and print its head as a checkpoint to keep",
                       description="Verify the file, then print (or write) an unsigned checkpoint of its head. "
                                   "Keep it: `verify --anchor` then detects a file cut back before it.")
    c.add_argument("path", help="the ledger file (or a sqlite:/// URL)")
    c.add_argument("--out", metavar="FILE", help="write the checkpoint JSON here instead of printing it")
    c.set_defaults(func=cmd_checkpoint)
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
    from vcompute.ledger.log import Checkpoint, is_hex

    anchor = minter = None
    try:
        if getattr(args, "anchor", None):
            with open(args.anchor, encoding="utf-8") as f:
                anchor = Checkpoint.from_json(f.read())
        if getattr(args, "minter", None):
            if not is_hex(args.minter.lower(), 64):
                raise ValueError(f"--minter must be 64 hex digits, got {args.minter!r}")
            minter = bytes.fromhex(args.minter)
        path = _path_of(args.path)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = verify_chain(path, anchor, minter=minter)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """``vcompute ledger checkpoint PATH``: verify, then emit the head as checkpoint JSON; 1 if broken.

    Args:
        args: parsed arguments with ``path`` and ``out``.

    Returns:
        The exit status.
    """
    from vcompute.ledger.chain import verify_chain

    try:
        report = verify_chain(_path_of(args.path))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not report.ok:
        print(report.summary(), file=sys.stderr)
        return 1
    text = report.checkpoint().to_json()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def _path_of(arg: str) -> str:
    """A plain path is taken literally; a ``sqlite:///`` URL is decoded as :func:`vl.open` would."""
    from vcompute.ledger.chain import ledger_file

    return ledger_file(arg)


def cmd_show(args: argparse.Namespace) -> int:
    """``vcompute ledger show URL``: a table of accounts; 2 if the ledger cannot be opened.

    Args:
        args: parsed arguments with ``url``.

    Returns:
        The exit status.
    """
    import os
    from urllib.parse import quote

    import vcompute.ledger as vl

    url = args.url if "://" in args.url else f"sqlite:///{quote(args.url)}"
    try:
        if url.startswith("sqlite:") and not os.path.exists(_path_of(url)):
            print(f"error: no ledger file at {_path_of(url)}", file=sys.stderr)
            return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
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
    if not url.startswith("sqlite:"):
        return None
    import os
    import sqlite3
    from urllib.parse import quote

    try:
        db = sqlite3.connect(f"file:{quote(os.path.abspath(_path_of(url)))}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT v FROM meta WHERE k = 'minter'").fetchone()
        finally:
            db.close()
        return bytes.fromhex(row[0]) if row else None
    except sqlite3.Error:
        return None
