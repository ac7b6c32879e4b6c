"""Pluggable ledgers (memory, SQLite, EVM) behind one protocol."""
