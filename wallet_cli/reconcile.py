"""`ayni-wallet reconcile`: the treasurer's independent check of the server and the chain.

Reads the entry log over HTTP (paged, resumable from a local checkpoint) or from an export
file, and recomputes everything with the pure ledger.core (ledger/core/reconcile.py); the chain
is read through ledger/verify/anchor_reader.py (web3), and the checkpoint written with
ledger.files. Those, and ledger.keystore for keys, are all of the ledger package the wallet
imports: never ledger.store, ledger.service, the server's chain writer (ledger.chain) nor
SQLAlchemy, so it never opens the server's database nor runs its code
(tests/test_layering.py imports all of the wallet in a fresh interpreter and checks what is loaded)."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from ledger.core import log_format
from ledger.core.codec import hex0x
from ledger.core.reconcile import ChainBatch, ClaimedBatch, Reconciler, Report
from ledger.core.trust_root import TrustRoot
from ledger.files import write_atomic
from ledger.verify.parallel import Recovery, signature_job


def _job(entry: dict):
    return signature_job(entry.get("seq"), entry.get("body")) if isinstance(entry, dict) else None

from .config import API_OPT, JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT

CHECK_TITLES = {
    "sequence": "entries numbered 1..N, no gap or repeat",
    "entry_hash": "every entry hash recomputed",
    "chain_hash": "hash chain unbroken",
    "rules": "replay from zero: digests, nonces, limits, status",
    "signature": "every signature recovers to its signer",
    "balance": "replayed balances equal the server's",
    "limit": "every balance within its limits",
    "zero_sum": "every currency sums to zero",
    "anchor_root": "chain roots equal recomputed roots",
    "anchor_record": "server's anchor records equal the chain's",
    "anchor_deadline": "nothing left unanchored past the deadline",
    "anchor_chain": "the chain's anchor history is unbroken",
    "malformed": "entries well-formed",
    "clock": "entry times never run backwards or ahead",
    "rollback": "nothing fetched earlier has vanished",
    "trust_root": "same community, contract and chain as pinned",
    "export_time": "the export says when it was made",
}


def _job(entry: object):
    """What an entry asks of signature recovery (ledger/verify/parallel.py)."""
    return signature_job(entry.get("seq"), entry.get("body")) if isinstance(entry, dict) else None


def _jobs(entries: list) -> list:
    return [j for j in map(_job, entries) if j is not None]


class ReconcileInputError(Exception):
    """Bad input (unreadable or truncated export, unreachable API or chain): one line, exit 2."""


@dataclass
class ServerClaims:
    """What the server says, to be checked: its balance sheet and its anchor records."""
    head_seq: int = 0
    balances: list = field(default_factory=list)
    contract: str | None = None
    batches: list[ClaimedBatch] = field(default_factory=list)


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ReconcileInputError(what)


def _claimed(batches: object) -> list[ClaimedBatch]:
    _need(isinstance(batches, list), "the anchor records are not a list")
    out = []
    for b in batches:
        try:
            _need(type(b["firstSeq"]) is int and type(b["lastSeq"]) is int, f"malformed anchor record {b!r:.80}")
            out.append(ClaimedBatch(b["firstSeq"], b["lastSeq"], bytes.fromhex(b["root"][2:]),
                                    b.get("status", "confirmed")))
        except (KeyError, TypeError, ValueError, IndexError):
            raise ReconcileInputError(f"malformed anchor record {b!r:.80}") from None
    return out


def _claims(head: object, balances: object, anchors: object) -> ServerClaims:
    _need(type(head) is int and head >= 0, f"the server's head seq {head!r:.40} is not a number")
    _need(isinstance(balances, list), "the balance sheet is not a list of rows")
    _need(isinstance(anchors, dict), "the anchor records are not an object")
    contract = anchors.get("contract")
    _need(contract is None or isinstance(contract, str), "the anchor contract is not an address")
    return ServerClaims(head, balances, contract, _claimed(anchors.get("batches") or []))


# -- sources ------------------------------------------------------------------------------
def _note_export_time(rec: Reconciler, exported_at: object) -> None:
    """Batches anchored before the export was made must lie inside it; the header's exportedAt
    says when that was. Without a usable one, an export cut inside an anchored batch would pass
    as an older export, so its absence is a discrepancy, not a default."""
    rec.report.checks_run.append("export_time")
    if type(exported_at) is int and exported_at > 0:
        rec.note_log_time(exported_at)
    else:
        rec.flag("export_time", None, "exportedAt: the export's time in ms since 1970",
                 "missing" if exported_at is None else f"{exported_at!r:.40}",
                 detail="without it, anchored batches cut off at the export's head cannot be told from later ones")


def feed_export(path: Path, rec: Reconciler, progress=None, recovery: Recovery | None = None) -> ServerClaims:
    try:
        f = open(path, encoding="ascii", newline="\n")
    except OSError as exc:
        raise ReconcileInputError(f"cannot read {path}: {exc.strerror}") from None
    with f:
        try:
            reader = log_format.ExportReader(f, name=str(path))
            total = reader.header.get("headSeq") if type(reader.header.get("headSeq")) is int else 0
            _note_export_time(rec, reader.header.get("exportedAt"))
            if recovery is not None:
                recovery.expect(total or None)
            entries = reader.entries() if recovery is None else recovery.entries(reader.entries(), _job)
            for i, entry in enumerate(entries, 1):
                rec.feed(entry)
                if progress is not None and i % 5000 == 0:
                    progress(i, total)
        except log_format.ExportInvalid as exc:
            raise ReconcileInputError(str(exc)) from None
        except UnicodeDecodeError:
            raise ReconcileInputError(f"{path} holds non-ASCII bytes: not an export this wallet wrote") from None
    end = reader.end
    _need(isinstance(end, dict), f"{path}: the end marker is not an object")
    return _claims(end.get("headSeq"), end.get("balances"), end.get("anchors", {}))


def feed_http(client, rec: Reconciler, checkpoint: Path, *, page: int = 1000, progress=None,
              refetch: bool = False, recovery: Recovery | None = None) -> ServerClaims:
    """Fetch the balance sheet first (it fixes headSeq), then the log up to that seq: entries
    already in the checkpoint file are re-checked from disk (the server's chain hash at the
    resume point must equal the cached one), the rest fetched and appended to it. A resumed
    run trusts that the server's rows before the checkpoint still hold what was fetched; a
    periodic `--refetch` re-reads everything. Entries cached earlier and gone from the server
    (a rollback) are reported and kept on disk as evidence. Pages are read ahead of the fold
    while `recovery` recovers their signatures on the other cores."""
    sheet = client.get("/v1/balances")
    _need(isinstance(sheet, dict), "the server's balance sheet is not an object")
    claims = _claims(sheet.get("headSeq"), sheet.get("balances"), _anchor_records(client))
    head = claims.head_seq
    if recovery is not None:
        recovery.expect(head)
    try:
        after = _resume(client, rec, checkpoint, head, refetch, recovery)
        if after == 0:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(checkpoint, log_format.dumps(log_format.header("", head, int(time.time() * 1000))) + "\n")
        pages = _pages(client, head, after, page)
        if recovery is not None:
            pages = recovery.chunks(pages, _jobs)
        with open(checkpoint, "a", encoding="ascii") as out:
            for entries in pages:
                for entry in entries:
                    rec.feed(entry)
                    out.write(log_format.dumps(entry) + "\n")
                out.flush()
                after = entries[-1]["seq"] if entries else after
                if progress is not None:
                    progress(after, head)
    except OSError as exc:
        raise ReconcileInputError(f"cannot write the checkpoint {checkpoint}: {exc.strerror}") from None
    return claims


def _pages(client, head: int, after: int, page: int):
    """The server's log after `after` up to `head`, page by page (each a list of entries)."""
    while after < head:
        data = client.get("/v1/log", params={"after": after, "limit": page})
        _need(isinstance(data, dict) and isinstance(data.get("entries"), list),
              "the server's log page is not {entries: [...]}")
        entries = data["entries"]
        if not entries:
            return
        taken = []
        for entry in entries:
            _need(isinstance(entry, dict) and type(entry.get("seq")) is int,
                  "the server's log page holds an entry without a seq")
            _need(entry["seq"] > after, f"the server's log pages do not advance (seq {entry['seq']} "
                                        f"after {after})")
            if entry["seq"] > head:
                break
            taken.append(entry)
            after = entry["seq"]
        yield taken
        if entries[-1]["seq"] >= head or data.get("nextAfter") is None:
            return


def _resume(client, rec: Reconciler, checkpoint: Path, head: int, refetch: bool,
            recovery: Recovery | None = None) -> int:
    """Feed the cached entries; return the last seq fed (0: start afresh)."""
    if not checkpoint.exists():
        return 0
    if refetch or not _same_ledger(client, checkpoint):
        if not refetch:
            rec.flag("trust_root", 1, "the genesis entry of the log fetched earlier", "another genesis",
                     detail=f"the server's history starts differently from the checkpoint (kept as "
                            f"{checkpoint.name}.replaced)")
        os.replace(checkpoint, checkpoint.with_name(checkpoint.name + ".replaced"))
        return 0
    after, cached_last, torn = 0, 0, False
    with open(checkpoint, encoding="ascii") as f:
        try:
            cached = log_format.ExportReader(f, name=str(checkpoint), require_end=False).entries()
            for entry in cached if recovery is None else recovery.entries(cached, _job):
                seq = entry.get("seq")
                if type(seq) is not int:
                    torn = True
                    break
                cached_last = max(cached_last, seq)
                if seq <= head:
                    rec.feed(entry)
                    after = seq
        except log_format.ExportInvalid:
            torn = True  # a line torn by a killed fetch: keep what was read, fetch the rest
    if cached_last > head:
        rec.flag("rollback", head + 1, f"entries through seq {cached_last} (fetched earlier)",
                 f"the server's log ends at seq {head}",
                 detail="entries the server served before are gone; the checkpoint keeps them")
    elif torn and after:
        _truncate_after(checkpoint, after)
    if after:
        theirs = (client.get("/v1/log", params={"after": after - 1, "limit": 1}).get("entries") or [{}])[0]
        if theirs.get("chainHash") != rec.head_chain_hash:
            rec.flag("chain_hash", after, rec.head_chain_hash, theirs.get("chainHash"),
                     detail="the server's chain hash differs from the one fetched earlier: history was "
                            "rewritten since the checkpoint (run with --refetch to see where)")
    return after if cached_last <= head else head


def _same_ledger(client, checkpoint: Path) -> bool:
    """The checkpoint belongs to this server's ledger iff its genesis entry hash is the server's."""
    try:
        with open(checkpoint, encoding="ascii") as f:
            next(f)
            first = json.loads(next(f))
    except (OSError, StopIteration, ValueError, UnicodeDecodeError):
        return False
    page = client.get("/v1/log", params={"after": 0, "limit": 1})
    theirs = (page.get("entries") or [{}])[0] if isinstance(page, dict) else {}
    return isinstance(first, dict) and first.get("seq") == 1 and first.get("entryHash") == theirs.get("entryHash")


def _anchor_records(client) -> dict:
    from .config import WalletError
    batches, after, contract = [], 0, None
    while True:
        try:
            page = client.get("/v1/anchors", params={"limit": 1000, "after": after})
        except WalletError as exc:
            if getattr(exc, "code", None) == "not_found":
                return {"contract": None, "batches": []}  # this cooperative does not anchor
            raise
        _need(isinstance(page, dict) and isinstance(page.get("batches"), list), "the anchor records are not a list")
        contract = page.get("contract")
        batches += page["batches"]
        if len(page["batches"]) < 1000:
            return {"contract": contract, "batches": batches}
        last = page["batches"][-1].get("lastSeq")
        _need(type(last) is int and last > after, "the server's anchor pages do not advance")
        after = last


def _truncate_after(path: Path, last_seq: int) -> None:
    """Drop anything after the line of `last_seq` (a line torn by a killed fetch)."""
    keep = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            keep.append(line)
            try:
                if json.loads(line).get("seq") == last_seq:
                    break
            except (ValueError, AttributeError):
                break
    write_atomic(path, "".join(keep), mode=0o600)


# -- pins: what the treasurer learnt the first time, held against the server later --------------
def load_pins(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        pins = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReconcileInputError(f"cannot read the pins file {path}: {exc}") from None
    _need(isinstance(pins, dict), f"{path} is not a pins file")
    return pins


def save_pins(path: Path, pins: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(pins, indent=1) + "\n", mode=0o600)


# -- the chain ----------------------------------------------------------------------------
def chain_batches(chain, at_block: int | None = None) -> tuple[list[ChainBatch], list[str]]:
    from ledger.verify.chain_types import implausible
    events, problems = chain.batch_history(at_block=at_block)
    times: dict[int, int] = {}
    out = []
    for e in events:
        if implausible(e.first_seq, e.last_seq):
            continue  # a hostile batch: batch_history's problems name it (a finding), it has no entries to check
        if e.block not in times:
            times[e.block] = chain.block_time_ms(e.block)
        out.append(ChainBatch(e.first_seq, e.last_seq, e.root, e.tx_hash, e.block, times[e.block]))
    return out, problems


def _warn_batches_after_export(rec: Reconciler, batches: list[ChainBatch]) -> None:
    """Batches wholly past an export's head that were anchored after it was made are not
    checkable against it (those anchored before are findings already): say so, never silently."""
    head = rec.report.head_seq
    flagged = {d.seq for d in rec.report.discrepancies if d.check == "anchor_root"}
    later = [b for b in batches if b.first_seq > head and b.first_seq not in flagged]
    if later:
        rec.report.warnings.append(
            f"{len(later)} chain batch(es) ({later[0].first_seq}..{later[-1].last_seq}) lie beyond this export "
            f"(head seq {head}) and were anchored after it was made (by the export's own unsigned time): not "
            "checked here; reconcile against the server (--api) or a newer export to check them")


def _flag_all(rec: Reconciler, mismatches) -> None:
    for m in mismatches:
        rec.flag("trust_root", m.seq, m.expected, m.found, account=m.account, detail=m.detail)


def reconcile(*, export: Path | None = None, client=None, checkpoint: Path | None = None, chain=None,
              skip_chain: bool = False, deadline_s: int | None = 86_400, verify_signatures: bool = True,
              jobs: int | None = None, workers: int | None = None, parallel_threshold: int | None = None,
              parallel_chunk: int | None = None, page: int = 1000, progress=None, now_ms: int | None = None,
              refetch: bool = False, pins_path: Path | None = None, community_salt: str | None = None,
              chain_id: int | None = None, treasurer: str | None = None, own_role: str = "treasurer",
              contract: str | None = None) -> Report:
    """Run every check; raise ReconcileInputError for input that cannot be reconciled at all.

    The trust root (ledger/core/trust_root.py) is the pins file `pins_path` (genesis entry, anchor
    contract, chain: learnt at the first reconciliation, held against the server later) overridden
    by what the configuration pins (`community_salt`, `chain_id`, `contract`); `treasurer` is the
    checker's own key, which must hold `own_role` (treasurer or auditor) in the replayed history."""
    now_ms = now_ms or int(time.time() * 1000)
    pinned = TrustRoot.from_pins_file(load_pins(pins_path))
    trust = pinned.overridden_by(TrustRoot(contract=contract, chain_id=chain_id, community_salt=community_salt,
                                           own_key=treasurer, own_role=own_role))
    # signatures recovered on `jobs` cores ahead of the fold (ledger/verify/parallel.py); the
    # older `workers` (processes besides this one, 0: none) still means the same
    if jobs is None and workers is not None:
        jobs = max(1, workers)
    tuning = {k: v for k, v in (("threshold", parallel_threshold), ("chunk", parallel_chunk)) if v is not None}
    recovery = Recovery(jobs, **tuning) if verify_signatures else None
    rec = Reconciler(signature_check=recovery.check if recovery else None, verify_signatures=verify_signatures,
                     now_ms=now_ms)
    # read the chain as it was before the server's head: a batch past that head is then hidden entries
    snapshot = chain.block_number() if chain is not None and export is None else None
    try:
        if export is not None:
            claims = feed_export(export, rec, progress, recovery)
        else:
            claims = feed_http(client, rec, checkpoint, page=page, progress=progress, refetch=refetch,
                               recovery=recovery)
        rec.finish_log()
    finally:
        if recovery is not None:
            recovery.close()
    if trust.pins_anything():  # the report claims only the checks it made
        rec.report.checks_run.append("trust_root")
        g = rec.state.genesis
        _flag_all(rec, trust.check_history(rec.genesis_hash, g.domain if g is not None else None, rec.state.accounts))
    rec.compare_balances(claims.head_seq, claims.balances)
    if trust.contract is not None:
        _flag_all(rec, TrustRoot(contract=trust.contract).check_anchor_target(
            claims.contract, None, what="the server's anchor records"))
    contract = trust.contract or claims.contract
    if chain is not None:
        _flag_all(rec, TrustRoot(contract=contract, anchor_chain_id=trust.anchor_chain_id).check_anchor_target(
            chain.contract_address, chain.chain_id, what="the chain node read"))
        batches, problems = chain_batches(chain, snapshot)
        rec.check_anchors(batches, claims.batches, now_ms=now_ms, deadline_ms=deadline_s * 1000 if deadline_s else None,
                          chain_problems=problems, log_may_be_older=export is not None)
        if export is not None:
            _warn_batches_after_export(rec, batches)
    elif skip_chain:
        rec.report.checks_run.append("anchors NOT checked (--skip-chain)")
    elif contract:
        raise ReconcileInputError(f"this ledger anchors to contract {contract}: give --chain URL "
                                  "(a node of that chain) or --skip-chain to reconcile without it")
    else:
        raise ReconcileInputError("this ledger names no anchor contract, so nothing can be checked on a chain: "
                                  "give --skip-chain to reconcile without one, or --contract and --chain")
    if pins_path is not None and not pinned.pins_anything() and "trust_root" not in rec.report.counts \
            and rec.genesis_hash:
        g = rec.state.genesis
        learnt = TrustRoot(genesis_hash=rec.genesis_hash, community_salt=hex0x(g.domain.salt),
                           chain_id=g.domain.chain_id, contract=contract,
                           anchor_chain_id=chain.chain_id if chain is not None else None)
        save_pins(pins_path, learnt.pins_file())
        rec.report.checks_run.append(f"trust root pinned in {pins_path}")
    return rec.report


# -- rendering ----------------------------------------------------------------------------
def render(report: Report, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ledger.core.text import visible
    summary = Table(title=f"Reconciliation: {report.entries} entries, head seq {report.head_seq}")
    summary.add_column("check")
    summary.add_column("result")
    for check in report.checks_run:
        n = report.counts.get(check, 0)
        summary.add_row(CHECK_TITLES.get(check, check), "[green]ok[/]" if n == 0 else f"[red]{n} found[/]")
    for check, n in report.counts.items():
        if check not in report.checks_run:
            summary.add_row(CHECK_TITLES.get(check, check), f"[red]{n} found[/]")
    console.print(summary)
    totals = ", ".join(f"{c} {t}" for c, t in sorted(report.currencies.items()))
    console.print(f"accounts {report.accounts}; currency totals {totals or '-'}; signatures checked "
                  f"{report.signatures_checked}; batches checked {report.batches_checked}, anchored through seq "
                  f"{report.anchored_through}; head chain hash {report.head_chain_hash}")
    if report.discrepancies:
        t = Table(title="Discrepancies", show_lines=False)
        for col in ("check", "seq", "account", "currency", "expected", "found", "detail"):
            t.add_column(col, overflow="fold")
        for d in report.discrepancies:  # what the server said: never markup, never a terminal control
            t.add_row(*(escape(visible(str(x))) for x in (
                d.check, d.seq if d.seq is not None else "-", d.account or "-", d.currency or "-",
                d.expected, d.found, d.detail)))
        console.print(t)
        listed, total = len(report.discrepancies), sum(report.counts.values())
        if total > listed:
            console.print(f"... and {total - listed} more (counts above)")
    for warning in report.warnings:
        console.print(f"[bold yellow]WARNING:[/] {escape(visible(warning))}")
    console.print("[green]RECONCILED: everything matches[/]" if report.ok else "[red]DISCREPANCIES FOUND[/]")


def reconcile_cmd(
    log: Path = typer.Option(None, "--log", help="Read an export file (`ayni export-log`) instead of the API"),
    api: str = API_OPT,
    key: str = KEY_OPT,
    password_file: Path = PASSWORD_FILE_OPT,
    chain: str = typer.Option(None, "--chain", help="JSON-RPC URL of a node of the anchoring chain "
                                                   "(default: config / $AYNI_CHAIN_URL)"),
    contract: str = typer.Option(None, "--contract", help="The community's Anchor contract (else "
                                 "$AYNI_ANCHOR_CONTRACT, wallet.toml anchor_contract, the pins file, the ledger's)"),
    skip_chain: bool = typer.Option(False, "--skip-chain", help="Do not check anchors (the report says so)"),
    deadline: int = typer.Option(86_400, "--anchor-deadline", min=0,
                                 help="Seconds after which an entry must be anchored (0: do not check)"),
    no_signatures: bool = typer.Option(False, "--no-signatures",
                                       help="Skip signature recovery (faster; digests and rules still checked)"),
    jobs: int = typer.Option(None, "--jobs", "-j", min=1,
                             help="Cores recovering signatures (1: in this process; default: every core). "
                                  "Logs under 20,000 entries are checked in this process anyway"),
    workers: int = typer.Option(None, "--workers", min=0, hidden=True,
                                help="Older spelling: processes recovering signatures (0 or 1: this one)"),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Local copy of the fetched log, to resume from"),
    refetch: bool = typer.Option(False, "--refetch", help="Ignore the checkpoint and fetch the whole log again"),
    pins: Path = typer.Option(None, "--pins", help="Trust root file: written at the first reconciliation "
                                                  "(genesis, contract, chain), checked at every later one "
                                                  "(default over HTTP: beside the checkpoint)"),
    as_json: bool = JSON_OPT,
) -> None:
    """Verify the whole ledger independently: hashes, replayed balances, zero-sum, limits, anchors.

    Exit 0 only when everything matches; 1 when a discrepancy is found; 2 when the input
    cannot be reconciled (unreadable or truncated export, unreachable API or chain); 3 on an
    unexpected fault (a bug: please report it)."""
    from rich.console import Console
    from .config import load_config
    from .config import fail
    console = Console(stderr=as_json)
    client = None
    try:
        cfg = load_config(api_url=api, keystore=key, password_file=password_file, chain_url=chain,
                          anchor_contract=contract)
        own_key, own_role = None, "treasurer"
        if log is None:
            client, checkpoint = _http_client(cfg, checkpoint)
            own_key, own_role = client.address, client.role or "treasurer"
            pins = pins or checkpoint.with_name(checkpoint.stem + ".pins.json")
        pinned = load_pins(pins)
        node = None if skip_chain else _connect_chain(cfg.chain_url, cfg.anchor_contract or pinned.get("contract"),
                                                      log, client)
        with _progress(console, as_json) as progress:
            report = reconcile(export=log, client=client, checkpoint=checkpoint, chain=node,
                               skip_chain=skip_chain, deadline_s=deadline or None,
                               verify_signatures=not no_signatures, jobs=jobs, workers=workers,
                               progress=progress,
                               refetch=refetch, pins_path=pins, community_salt=cfg.community_salt,
                               chain_id=cfg.chain_id, treasurer=own_key, own_role=own_role,
                               contract=cfg.anchor_contract)
    except ReconcileInputError as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        fail("interrupted: nothing was concluded (the checkpoint keeps what was fetched)", 130)
    except Exception as exc:  # noqa: BLE001 - never a traceback: one line, a distinct exit code
        message = _known_fault(exc)
        if message is None:
            fail(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                  "(a bug in the wallet: please report it)", 3)
        fail(message, 2)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=1))
    else:
        render(report, console)
    raise typer.Exit(0 if report.ok else 1)


def _known_fault(exc: Exception) -> str | None:
    from ledger.verify.chain_types import ChainError
    if isinstance(exc, ChainError):
        return f"chain: {exc.code}: {exc}"
    if type(exc).__name__ == "WalletError":
        return str(exc)
    return None


class _progress:
    def __init__(self, console, quiet: bool):
        self.console, self.quiet = console, quiet

    def __enter__(self):
        if self.quiet or not self.console.is_terminal:
            return None
        from rich.progress import Progress
        self._p = Progress(console=self.console, transient=True)
        self._p.start()
        self._task = self._p.add_task("reading the log", total=None)
        return lambda done, total: self._p.update(self._task, completed=done, total=total or None)

    def __exit__(self, *exc):
        if getattr(self, "_p", None) is not None:
            self._p.stop()


def _http_client(cfg, checkpoint):
    import hashlib
    from .client import open_ledger_reader
    from .config import data_home
    client = open_ledger_reader(cfg)  # signed in: the purpose follows the key's role
    if checkpoint is None:  # one per API URL (readable prefix + hash: no two URLs share a file)
        safe = "".join(ch if ch.isalnum() else "_" for ch in cfg.api_url)[:60]
        digest = hashlib.sha256(cfg.api_url.encode()).hexdigest()[:12]
        checkpoint = data_home() / "reconcile" / f"{safe}-{digest}.jsonl"
    return client, checkpoint


def _connect_chain(chain_url, contract, log, client):
    from ledger.verify.anchor_reader import AnchorReader
    if not chain_url:
        return None  # reconcile() refuses if the ledger anchors and --skip-chain was not given
    if contract is None:
        contract = _contract_named_by(log, client)
    if contract is None:
        raise ReconcileInputError("the ledger names no anchor contract: give --contract, or --skip-chain")
    return AnchorReader.connect(chain_url, contract_address=contract)


def _contract_named_by(log, client) -> str | None:
    if log is not None:
        try:
            with open(log, encoding="ascii") as f:
                last = None
                for last in f:
                    pass
            return ((json.loads(last) or {}).get("end") or {}).get("anchors", {}).get("contract") if last else None
        except (OSError, ValueError, AttributeError, UnicodeDecodeError):
            return None  # the full read reports what is wrong with the file
    return _anchor_records(client).get("contract")
