"""`ayni doctor`: checks a deployment, one line per check (OK / WARN / FAIL and why).

What it looks at, and why each matters (docs/deploy.md, "Checking a deployment"):
- database: reachable and migrated to head, else `ayni serve` refuses to start or answers 503;
- files: the SQLite database, the API's token secret, the anchoring and node keystores and
  their passphrase files are not readable by group or others (whoever reads the token secret
  can mint sign-ins; whoever reads a keystore and its passphrase can anchor or pay as the node);
- chain: the node answers, is the chain the configuration names, and the contract at the
  pinned address is an Ayni Anchor for this chain (not an empty address or another contract);
- anchoring lag and the anchoring key's balance: anchoring that silently stopped leaves
  members' receipts missing; a key without funds stops it;
- disk: a full data disk stops every posting.

Exit status: 0 when nothing FAILs (WARNs are shown, not fatal), 1 otherwise. It reads the
same settings as the services (the environment file's AYNI_* variables), so on a server:
`sudo -u ayni env $(cat /etc/ayni/ayni.env | xargs) ayni doctor` or `systemd-run`
(docs/deploy.md shows the exact line)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from .anchoring import CHAIN_HELP, CONTRACT_HELP, KEYSTORE_HELP
from .options import AsJson, Db, fail, say, sqlite_path
from .serve import DEFAULT_SESSION_KEY_FILE

OK, WARN, FAIL = "OK", "WARN", "FAIL"
# The same thresholds as deploy/prometheus/ayni-alerts.yml, so doctor and the alerts agree.
LAG_WARN_S = 7200
LAG_FAIL_S = 86400
DISK_WARN = 0.10
DISK_FAIL = 0.03
MIN_BALANCE_WEI = 10**16
# "secrets": only the explicitly named key files and the secrets folder, never the data file or
# the session key: what root checks (docs/deploy.md) without the service's environment file.
GROUPS = ("files", "secrets", "database", "chain", "lag", "disk")


@dataclass
class Check:
    name: str
    status: str
    reason: str


def _mode_check(name: str, path: Path, *, required: bool, missing_note: str = "") -> Check | None:
    """FAIL if group or others may read, write or enter `path`; None when it is absent and optional."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if required:
            return Check(name, FAIL, f"{path} does not exist")
        return Check(name, WARN, f"{path} does not exist{missing_note}") if missing_note else None
    except OSError as exc:
        return Check(name, FAIL, f"{path}: {exc.strerror}")
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check(name, FAIL, f"{path} is accessible to group or others (mode {mode:04o}): chmod "
                                 f"{'700' if path.is_dir() else '600'} {path}")
    # 0600 protects nothing if another user owns the file: that user reads it. Root (the
    # secrets folder) or whoever runs doctor (the service user, for its data) may own it.
    if st.st_uid not in (0, os.geteuid()):
        return Check(name, WARN, f"{path} mode {mode:04o} but owned by {_user(st.st_uid)}, who can read it: "
                                 f"chown it to root or the service user")
    return Check(name, OK, f"{path} mode {mode:04o}, owner {_user(st.st_uid)}")


def _user(uid: int) -> str:
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _keystore_check(name: str, path: Path) -> Check | None:
    """A keystore that is not a V3 JSON keystore stops the unit at every start: say so here.
    Reads only the public fields (never decrypts)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return Check(name, FAIL, f"{path} is not a JSON keystore ({type(exc).__name__})")
    crypto = data.get("crypto", data.get("Crypto")) if isinstance(data, dict) else None
    if not isinstance(crypto, dict) or data.get("version") != 3 or "ciphertext" not in crypto:
        return Check(name, FAIL, f"{path} is JSON but not a V3 keystore (version 3 with crypto.ciphertext)")
    address = data.get("address")
    return Check(name, OK, f"{path} is a V3 keystore" + (f" for 0x{str(address).removeprefix('0x')}"
                                                         if address else ""))


def check_files(url: str, *, keystore: Path | None, password_file: Path | None, node_keystore: Path | None,
                node_password_file: Path | None, secrets_dir: Path | None, data: bool = True) -> list[Check]:
    checks: list[Check] = []
    db_file = sqlite_path(url) if data else None
    if db_file is not None:
        checks.append(_mode_check("data file", db_file, required=True))
        for suffix in ("-wal", "-shm"):
            c = _mode_check("data file", db_file.with_name(db_file.name + suffix), required=False)
            if c is not None and c.status != OK:
                checks.append(c)
    if data:
        session = Path(os.environ.get("AYNI_SESSION_KEY_FILE", DEFAULT_SESSION_KEY_FILE))
        checks.append(_mode_check("session key", session, required=False,
                                  missing_note=" yet (`ayni serve` creates it, 0600, on first start)"))
    for name, path in (("anchoring keystore", keystore), ("anchoring passphrase", password_file),
                       ("node keystore", node_keystore), ("node passphrase", node_password_file)):
        if path is not None:
            c = _mode_check(name, path, required=True)
            checks.append(c)
            if name.endswith("keystore") and c is not None and c.status != FAIL:
                checks.append(_keystore_check(name, path))
    if secrets_dir is not None:
        checks.append(_mode_check("secrets dir", secrets_dir, required=True))
        if secrets_dir.is_dir():
            for p in sorted(secrets_dir.iterdir()):
                if p.is_file():
                    c = _mode_check("secret file", p, required=True)
                    checks.append(c)
                    if p.suffix == ".json" and c is not None and c.status != FAIL:
                        checks.append(_keystore_check("secret keystore", p))
    return [c for c in checks if c is not None]


def check_database(url: str):
    """(checks, ledger or None)."""
    from ..core.errors import LedgerError
    from ..service import Ledger
    try:
        ledger = Ledger.open(url, migrate=False)
    except LedgerError as exc:
        if exc.code == "not_initialised":
            return [Check("database", FAIL, _schema_advice(url, exc))], None
        return [Check("database", FAIL, f"{exc.code}: {exc.message}")], None
    try:
        seq, _ = ledger.head()
    except LedgerError as exc:
        ledger.close()
        return [Check("database", FAIL, f"{exc.code}: {exc.message}")], None
    if seq == 0:
        return [Check("database", FAIL, "schema at head but no community: run `ayni init`")], ledger
    return [Check("database", OK, f"reachable, schema at head, log at seq {seq}")], ledger


def _schema_advice(url: str, exc) -> str:
    """Empty, behind and ahead call for different actions: only the first two are fixed by
    migrating, and a database from a newer release must not be run by this one at all."""
    from .. import monitoring
    try:
        position, current, head = monitoring.schema_position(url)
    except Exception:  # noqa: BLE001 - cannot even read the revision: the store's own words
        return f"{exc.code}: {exc.message}"
    if position == "empty":
        return "no Ayni schema in this database: run `ayni init` (a new community) or restore a backup"
    if position == "behind":
        return (f"schema at revision {current}, this release's head is {head}: `ayni serve` (or `ayni init`) "
                "migrates it on start")
    if position == "ahead":
        return (f"schema at revision {current}, which this release does not know (its head is {head}): the "
                "database was migrated by a newer release. Run that release, or restore the backup taken "
                "before the upgrade (docs/deploy.md, \"Upgrades and rollback\"); never migrate it down by hand")
    return f"{exc.code}: {exc.message}"


def _anchor_address(keystore: Path | None) -> str | None:
    """The anchoring key's public address (never decrypts the keystore)."""
    if os.environ.get("AYNI_ANCHOR_ADDRESS"):
        return os.environ["AYNI_ANCHOR_ADDRESS"]
    if keystore is None:
        return None
    try:
        found = json.loads(keystore.read_text()).get("address")
    except (OSError, ValueError, AttributeError):
        return None
    return ("0x" + found.removeprefix("0x")) if isinstance(found, str) else None


def check_chain(chain: str | None, contract: str | None, chain_id: int | None, keystore: Path | None,
                ledger, *, min_balance: int) -> list[Check]:
    if not chain:
        if contract:
            return [Check("chain", WARN, "AYNI_ANCHOR_CONTRACT is set but no chain URL (AYNI_CHAIN_URL): "
                                         "nothing can anchor")]
        return [Check("chain", OK, "no chain configured: anchoring is off")]
    from ..chain.web3_anchor import load_artifact
    from ..verify.anchor_reader import AnchorReader
    from ..verify.chain_types import ChainError
    checks: list[Check] = []
    try:
        reader = AnchorReader.connect(chain, timeout=10.0, expected_chain_id=chain_id)
    except ChainError as exc:
        return [Check("chain", FAIL, f"{exc.code}: {exc}")]
    recorded = _recorded_chain_ids(ledger, contract)
    if recorded and recorded != {reader.chain_id}:
        checks.append(Check("chain", FAIL, f"the node is chain id {reader.chain_id}, but this ledger's batches were "
                                            f"anchored on chain id {sorted(recorded)}"))
    else:
        checks.append(Check("chain", OK, f"{chain} answers, chain id {reader.chain_id}"
                                         + (" (as configured)" if chain_id is not None else "")))
    if contract:
        try:
            reader.use_contract(contract)
            code = reader.w3.eth.get_code(reader.w3.to_checksum_address(contract))
            built = bytes.fromhex(load_artifact().get("deployedBytecode", "").removeprefix("0x"))
            same = same_code(bytes(code), built)
            checks.append(Check("contract", OK if same else WARN,
                                f"{contract} is an Ayni Anchor for chain {reader.chain_id}"
                                + (", its code that of contracts/build/Anchor.json (immutables aside)" if same else
                                   " (GENESIS matches) but its code differs from this release's "
                                   "contracts/build/Anchor.json: deployed by another release?")))
        except ChainError as exc:
            checks.append(Check("contract", FAIL, f"{exc.code}: {exc}"))
        except Exception as exc:  # noqa: BLE001 - a node fault on get_code: unreachable, said in one line
            checks.append(Check("contract", FAIL, f"reading the code at {contract}: {type(exc).__name__}: {exc}"))
        else:
            checks += check_anchor_role(reader, contract, _anchor_address(keystore))
    else:
        checks.append(Check("contract", WARN, "no AYNI_ANCHOR_CONTRACT: deploy one with `ayni chain deploy`"))
    address = _anchor_address(keystore)
    if address is None:
        checks.append(Check("anchor key balance", WARN, "anchoring key address unknown: set AYNI_ANCHOR_ADDRESS "
                                                        "(or --keystore) to have its balance checked"))
    else:
        try:
            from ..chain.balance import (
                anchor_key_balance_wei,  # the one balance rule, as the metric's
            )
            wei = anchor_key_balance_wei(chain, address=address, timeout=10.0, expected_chain_id=reader.chain_id)
        except Exception as exc:  # noqa: BLE001 - node fault or a malformed address: one line
            checks.append(Check("anchor key balance", FAIL, f"cannot read the balance of {address}: "
                                                            f"{type(exc).__name__}: {exc}"))
        else:
            status = FAIL if wei == 0 else WARN if wei < min_balance else OK
            checks.append(Check("anchor key balance", status, f"{address} holds {wei} wei"
                                + ("" if status == OK else f" (below {min_balance}): top it up before anchoring stops")))
    return checks


def check_anchor_role(reader, contract: str, address: str | None) -> list[Check]:
    """An Ayni Anchor at the address is not enough: GENESIS names the chain and the address, not
    the community, so another community's contract (or ours with another key) passes that test
    and every anchor then reverts. Ask the contract whether our key may anchor (isAnchorer) and
    whether it still takes anchors (retired)."""
    from ..chain.web3_anchor import load_artifact
    try:
        w3 = reader.w3
        anchor = w3.eth.contract(address=w3.to_checksum_address(contract), abi=load_artifact()["abi"])
        retired = bool(anchor.functions.retired().call())
        allowed = None if address is None else bool(
            anchor.functions.isAnchorer(w3.to_checksum_address(address)).call())
    except Exception as exc:  # noqa: BLE001 - a node fault or a malformed address: one line
        return [Check("anchoring role", FAIL, f"asking {contract} for retired()/isAnchorer(): "
                                              f"{type(exc).__name__}: {exc}")]
    if retired:
        return [Check("anchoring role", FAIL, f"{contract} is retired: it takes no more anchors (deploy a new "
                                              "one with `ayni chain deploy`, docs/anchoring.md)")]
    if allowed is None:
        return [Check("anchoring role", WARN, "anchoring key address unknown: set AYNI_ANCHOR_ADDRESS to have "
                                              "its role on the contract checked")]
    if not allowed:
        return [Check("anchoring role", FAIL, f"the anchoring key {address} is not an anchorer of {contract}: "
                                              "every anchor would revert (wrong contract or wrong key?)")]
    return [Check("anchoring role", OK, f"{address} may anchor on {contract}, which is not retired")]


def same_code(onchain: bytes, built: bytes) -> bool:
    """Is `onchain` the runtime code of `built` (the artifact's deployedBytecode)? Immutables
    (the anchoring key, GENESIS) are written into the code at deployment, where the artifact
    holds 32 zero bytes: those words may differ, every other byte must be equal."""
    if len(onchain) != len(built) or not built:
        return False
    free = bytearray(len(built))
    i = built.find(bytes(32))
    while i != -1:
        free[i:i + 32] = b"\x01" * 32
        i = built.find(bytes(32), i + 32)
    return all(a == b or free[k] for k, (a, b) in enumerate(zip(onchain, built)))


def _recorded_chain_ids(ledger, contract: str | None) -> set[int]:
    if ledger is None or not contract:
        return set()
    from ..anchoring import Anchoring
    try:
        return {b["chain_id"] for b in Anchoring(ledger, contract=contract).batches(include_failed=False)}
    except Exception:  # noqa: BLE001 - the database check already says what is wrong with it
        return set()


def check_lag(ledger, contract: str | None, *, warn_s: float, fail_s: float) -> list[Check]:
    if ledger is None or not contract:
        return []
    from ..anchoring import Anchoring
    from ..core.errors import LedgerError
    try:
        batches = Anchoring(ledger, contract=contract).batches(include_failed=False)
        through = max([b["last_seq"] for b in batches if b["status"] == "confirmed"], default=0)
        head, _ = ledger.head()
        if head <= through:
            return [Check("anchoring lag", OK, f"every entry anchored (through seq {through})")]
        oldest = next(ledger.iter_entries(after_seq=through, page=1))
    except LedgerError as exc:
        return [Check("anchoring lag", FAIL, f"{exc.code}: {exc.message}")]
    age = max(0.0, time.time() - oldest.at / 1000)
    status = FAIL if age > fail_s else WARN if age > warn_s else OK
    return [Check("anchoring lag", status, f"{head - through} entries wait; the oldest (seq {oldest.seq}) "
                                           f"for {age:.0f} s (warn above {warn_s:.0f} s)")]


def check_disk(url: str, ledger=None) -> list[Check]:
    """The filesystem the data lives on: $AYNI_DATA_DISK_PATH, the SQLite file's folder, or a
    local PostgreSQL's data_directory (when the database user may read it), else the state folder."""
    from .. import monitoring
    db_file = sqlite_path(url)
    session = Path(os.environ.get("AYNI_SESSION_KEY_FILE", DEFAULT_SESSION_KEY_FILE))
    if db_file is not None and not os.environ.get("AYNI_DATA_DISK_PATH"):
        folder = db_file.resolve().parent
    else:
        folder = monitoring.data_dir(ledger, session)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free = usage.free / usage.total if usage.total else 0.0
    status = FAIL if free < DISK_FAIL else WARN if free < DISK_WARN else OK
    return [Check("disk", status, f"{folder}: {usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB "
                                  f"({free:.0%})")]


def doctor(db: Db = None,
           chain: str = typer.Option(None, "--chain", envvar="AYNI_CHAIN_URL", help=CHAIN_HELP),
           contract: str = typer.Option(None, envvar="AYNI_ANCHOR_CONTRACT", help=CONTRACT_HELP),
           chain_id: int = typer.Option(None, envvar="AYNI_CHAIN_ID", help="Chain id the node must report "
                                        "(default: $AYNI_CHAIN_ID; unset: any, but the ledger's recorded batches' chain)"),
           keystore: Path = typer.Option(None, envvar="AYNI_ANCHOR_KEYSTORE", help=KEYSTORE_HELP),
           password_file: Path = typer.Option(None, help="The anchoring passphrase file, to check its mode"),
           node_keystore: Path = typer.Option(None, envvar="AYNI_NODE_KEYSTORE", help="The node keystore, to check "
                                              "its mode"),
           node_password_file: Path = typer.Option(None, help="The node passphrase file, to check its mode"),
           secrets_dir: Path = typer.Option(None, envvar="AYNI_SECRETS_DIR", help="A folder of secret files "
                                            "(e.g. /etc/ayni/secrets): it and every file in it must be private"),
           min_balance_wei: int = typer.Option(MIN_BALANCE_WEI, min=0, help="Warn when the anchoring key holds less"),
           max_lag_seconds: float = typer.Option(LAG_WARN_S, min=0, help="Warn when the oldest unanchored entry "
                                                 "is older (a day: fail)"),
           only: list[str] = typer.Option(None, "--only", help="Run only these groups of checks (repeatable): "
                                          + ", ".join(GROUPS) + ". E.g. root checks the secrets folder with "
                                          "--only secrets, the service user everything else"),
           as_json: AsJson = False) -> None:
    """Check a deployment: database, file modes, chain and contract, anchoring lag and key balance,
    disk space. One line per check; exit status 1 when any check FAILs."""
    chain = chain or None
    contract = contract or None
    bad_contract = None
    if contract:
        from ..core.addresses import normalize_address
        from ..core.errors import LedgerError
        try:
            contract = normalize_address(contract, what="contract")  # the form batches are recorded under
        except LedgerError as exc:
            bad_contract, contract = Check("contract", FAIL, exc.message), None
    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        fail(f"--only {', '.join(unknown)}: not a group of checks (known: {', '.join(GROUPS)})", 2)
    groups = set(only or GROUPS)
    checks: list[Check] = [bad_contract] if bad_contract is not None else []
    if "files" in groups or "secrets" in groups:
        checks += check_files(db, keystore=keystore, password_file=password_file, node_keystore=node_keystore,
                              node_password_file=node_password_file, secrets_dir=secrets_dir,
                              data="files" in groups)
    ledger = None
    # the disk check asks a PostgreSQL server for its data_directory: it needs the database too
    needs_db = {"database", "chain", "lag"} | ({"disk"} if sqlite_path(db) is None else set())
    if groups & needs_db:
        exposed = [c for c in check_files(db, keystore=None, password_file=None, node_keystore=None,
                                          node_password_file=None, secrets_dir=None)
                   if c.status == FAIL and c.name == "data file" and "accessible" in c.reason]
        if exposed:  # the store refuses an exposed file anyway: say why once, not a driver's words
            checks.append(Check("database", FAIL, f"not opened: {exposed[0].reason}"))
        elif groups & needs_db:
            db_checks, ledger = check_database(db)
            checks += db_checks if "database" in groups or ledger is None else []
    try:
        if "chain" in groups:
            checks += check_chain(chain, contract, chain_id, keystore, ledger, min_balance=min_balance_wei)
        if "lag" in groups:
            checks += check_lag(ledger, contract, warn_s=max_lag_seconds, fail_s=max(LAG_FAIL_S, max_lag_seconds))
        if "disk" in groups:
            checks += check_disk(db, ledger)
    finally:
        if ledger is not None:
            ledger.close()
    if bad_contract is not None:  # "no contract configured" would contradict the line that says why
        checks = [c for c in checks if c.name != "contract" or c is bad_contract]
    failed = any(c.status == FAIL for c in checks)
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}))
    else:
        for c in checks:
            say(f"{c.status:<4} {c.name}: {c.reason}")
    raise typer.Exit(1 if failed else 0)
