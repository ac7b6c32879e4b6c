"""Fault injection for the SQLite ledger tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import sqlite3


class FaultyConnection:
    """Wraps a sqlite3 connection; ``fail(sql)`` decides which statements raise ``SQLITE_FULL``.

    Installed as ``ledger._db``: every statement the ledger runs goes through it.
    ``commits`` counts the COMMITs that went through.
    """

    def __init__(self, db, fail):
        self._db, self.fail, self.commits, self.faults = db, fail, 0, 0

    def _check(self, sql):
        if self.fail(sql):
            self.faults += 1
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql, *args):
        self._check(sql)
        if sql == "COMMIT":
            self.commits += 1
        return self._db.execute(sql, *args)

    def executemany(self, sql, rows):
        self._check(sql)
        return self._db.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self._db, name)
