#!/usr/bin/env python3
"""Appends N valid entries to a stopped controller's audit chain, for tests that need a large log.

usage: grow_audit_log.py DATABASE N
Each entry hashes exactly as controller/store/audit_chain.cpp does: SHA-256 over the JSON array
[seq, at_ms, actor, event, subject, details, prev_hash] in compact form, so `audit verify` walks
all of them and finds the chain intact.
"""
import hashlib
import json
import sqlite3
import sys


def main():
    db = sqlite3.connect(sys.argv[1])
    count = int(sys.argv[2])
    row = db.execute("SELECT seq, at_ms, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, at_ms, prev = row if row else (0, 1_800_000_000_000, "0" * 64)
    rows = []
    for _ in range(count):
        seq += 1
        at_ms += 1
        fields = [seq, at_ms, "test", "test.filler", "filler", '{"n":%d}' % seq, prev]
        text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode()).hexdigest()
        rows.append((seq, at_ms, "test", "test.filler", "filler", '{"n":%d}' % seq, prev, digest))
        prev = digest
    db.executemany(
        "INSERT INTO audit_log (seq, at_ms, actor, event, subject, details, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()


if __name__ == "__main__":
    main()
