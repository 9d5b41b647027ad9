"""`ayni backup`, `ayni restore`: a backup file that restores, checked before and after (docs/backup.md).

Exit codes of `restore`: 0 restored and verified; 1 refused (damaged file, non-empty target, head
or verify mismatch: the message says what the target is left holding); 2 the database could not
serve; 3 restored and verified, but the chain shows anchored entries past the restored head (a
lost tail) or the chain could not be read for that check: the operator must act before serving.
`check-tail` runs that last check alone (after a point-in-time recovery or a failover), exit 3 likewise.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core import errors as E
from .anchoring import CHAIN_HELP, CONTRACT_HELP
from .options import AsJson, Db, database_url, fail, fail_error, say

LOST_TAIL_EXIT = 3


def backup(out: Path = typer.Option(..., "--out", help="Backup file to write (0600; a tar holding manifest.json "
                                                       "and the dump)"),
           db: Db = None,
           overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file at --out"),
           as_json: AsJson = False) -> None:
    """Back up the database: SQLite's online backup API or pg_dump, plus a manifest (head, sha256)."""
    from ..backup import backup as make_backup
    try:
        result = make_backup(db, out, overwrite=overwrite)
    except E.LedgerError as exc:
        fail_error(exc)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    m = result.manifest
    if as_json:
        typer.echo(json.dumps(m, indent=2))
        return
    say(f"backed up {m['database']} ledger {m['community']!r} at head seq {m['headSeq']} ({m['headChainHash']}) "
        f"to {out}\ndump {m['dump']['bytes']} bytes, sha256 {m['dump']['sha256']}")


def _reader(chain: str | None, contract: str | None, consequence: str = ""):
    """The Anchor contract to check a lost tail against, or None when neither is given."""
    if not (chain or contract):
        return None
    if not (chain and contract):
        fail("the lost-tail check needs both --chain URL and --contract ADDRESS (or neither)")
    from ..core.addresses import normalize_address
    from ..verify.anchor_reader import AnchorReader
    from ..verify.chain_types import ChainError
    try:
        return AnchorReader.connect(chain, contract_address=normalize_address(contract, what="contract"))
    except ChainError as exc:
        fail(f"cannot read the chain for the lost-tail check ({exc.code}: {exc}){consequence}")


def _report_lost(lost) -> None:
    if lost is None:
        return
    if lost.mismatch:
        fail(f"{lost.mismatch}; the database must not be served", LOST_TAIL_EXIT)
    fail(lost.message() + "; the database must not be served yet", LOST_TAIL_EXIT)


def _target(value: str) -> str:
    return database_url(value)


def restore(file: Path = typer.Argument(..., help="A file written by `ayni backup`"),
            db: str = typer.Option(..., "--db", callback=_target, show_default=False,
                                   help="The EMPTY database to restore into (a new SQLite file, or a database made "
                                        "with createdb); required, never taken from $AYNI_DB_URL"),
            chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL",
                                      help=CHAIN_HELP + "; with --contract, checks for a lost tail"),
            contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
            as_json: AsJson = False) -> None:
    """Restore a backup into an empty database, verify it fully, and check the chain for a lost tail."""
    from ..backup import restore as run_restore
    reader = _reader(chain, contract, "; nothing was restored")
    try:
        result = run_restore(file, db, chain=reader)
    except E.LedgerError as exc:
        fail_error(exc)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}; nothing was restored")
    m = result.manifest
    lost = result.lost_tail
    if as_json:
        typer.echo(json.dumps({"ok": lost is None and result.chain_problem is None, "target": result.target,
                               "entries": result.entries, "headSeq": m["headSeq"], "headChainHash": m["headChainHash"],
                               "chainChecked": result.chain_checked, "chainProblem": result.chain_problem,
                               "lostTail": None if lost is None else
                               {"firstSeq": lost.first_seq, "lastSeq": lost.last_seq, "mismatch": lost.mismatch}},
                              indent=2))
    else:
        # the community as the restored database says it (checked equal to the manifest's)
        say(f"restored {m['database']} backup of {result.facts['community']!r} (made {m['createdAt']}) into "
            f"{result.target}: "
            f"head seq {m['headSeq']} ({m['headChainHash']}) matches the manifest; verify passed over "
            f"{result.entries} entries")
        if not result.chain_checked:
            say("no chain given (--chain, --contract): the lost-tail check did not run")
        say(f"before serving: `ayni retention run --db {result.target}` (the backup may hold memos and profiles "
            "erased or expired since it was made; docs/backup.md)")
    _report_lost(lost)  # the restored database is in place: the message says not to serve it yet
    if result.chain_problem:
        fail(f"restored and verified, but the chain could not be read for the lost-tail check "
             f"({result.chain_problem}): run it again before serving", LOST_TAIL_EXIT)


def check_tail(db: Db = None,
               chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
               contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
               as_json: AsJson = False) -> None:
    """Compare the database's head with the chain: name entries anchored but missing (a lost tail).

    Run it after any recovery that did not go through `ayni restore` (point-in-time recovery,
    a promoted standby, a disk swapped back): exit 3 when entries are missing."""
    from ..backup import lost_tail
    reader = _reader(chain, contract)
    if reader is None:
        fail("check-tail needs --chain URL and --contract ADDRESS (or AYNI_CHAIN_URL, AYNI_ANCHOR_CONTRACT)")
    try:
        lost = lost_tail(db, reader)
    except E.LedgerError as exc:
        fail_error(exc)
    if as_json:
        typer.echo(json.dumps({"ok": lost is None, "lostTail": None if lost is None else
                               {"firstSeq": lost.first_seq, "lastSeq": lost.last_seq, "mismatch": lost.mismatch}}))
    elif lost is None:
        say("nothing anchored is missing: the chain's anchored entries are all in this database")
    _report_lost(lost)
