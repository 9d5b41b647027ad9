"""`ayni-wallet reconcile`: the treasurer's independent check of the server and the chain.

Reads the entry log over HTTP (paged, resumable from a local checkpoint) or from an export
file, and recomputes everything with ledger.core (ledger/core/reconcile.py) and web3 only:
it never opens the server's database nor runs its service code."""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from ledger.core import log_format
from ledger.core.reconcile import ChainBatch, ClaimedBatch, Reconciler, Report, SignatureJob, bad_signatures

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
}


class ReconcileInputError(Exception):
    """Bad input (unreadable or truncated export, unreachable API or chain): one line, exit 2."""


class ProcessSignatures:
    """Signature recovery in worker processes, overlapped with the replay in this one."""

    def __init__(self, workers: int):
        self._pool = multiprocessing.get_context("fork").Pool(workers)
        self._pending = []

    def submit(self, jobs: list[SignatureJob]) -> None:
        self._pending.append((jobs, self._pool.apply_async(bad_signatures, (jobs,))))

    def collect(self) -> list[SignatureJob]:
        bad: list[SignatureJob] = []
        for jobs, result in self._pending:
            seqs = set(result.get())
            bad += [j for j in jobs if j[0] in seqs]
        self._pending.clear()
        return bad

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


@dataclass
class ServerClaims:
    """What the server says, to be checked: its balance sheet and its anchor records."""
    head_seq: int = 0
    balances: list[dict] = field(default_factory=list)
    contract: str | None = None
    batches: list[ClaimedBatch] = field(default_factory=list)


def _claimed(batches: list[dict]) -> list[ClaimedBatch]:
    out = []
    for b in batches:
        try:
            out.append(ClaimedBatch(int(b["firstSeq"]), int(b["lastSeq"]), bytes.fromhex(b["root"][2:]),
                                    b.get("status", "confirmed")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReconcileInputError(f"malformed anchor record {b!r}: {exc}") from None
    return out


# -- sources ------------------------------------------------------------------------------
def feed_export(path: Path, rec: Reconciler, progress=None) -> ServerClaims:
    try:
        f = open(path, encoding="ascii", newline="\n")
    except OSError as exc:
        raise ReconcileInputError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReconcileInputError(f"{path} is not an Ayni log export") from None
    with f:
        try:
            reader = log_format.ExportReader(f, name=str(path))
            total = reader.header.get("headSeq") or 0
            for i, entry in enumerate(reader.entries(), 1):
                rec.feed(entry)
                if progress is not None and i % 5000 == 0:
                    progress(i, total)
        except log_format.ExportInvalid as exc:
            raise ReconcileInputError(str(exc)) from None
        except UnicodeDecodeError:
            raise ReconcileInputError(f"{path} holds non-ASCII bytes: not an export this wallet wrote") from None
    end = reader.end
    anchors = end.get("anchors") or {}
    return ServerClaims(head_seq=int(end.get("headSeq", 0)), balances=list(end.get("balances") or []),
                        contract=anchors.get("contract"), batches=_claimed(anchors.get("batches") or []))


def feed_http(client, rec: Reconciler, checkpoint: Path, *, page: int = 1000, progress=None,
              refetch: bool = False) -> ServerClaims:
    """Fetch the balance sheet first (it fixes headSeq), then the log up to that seq: entries
    already in the checkpoint file are read from disk (and the server's chain hash at the
    resume point must equal the cached one), the rest fetched and appended to it. A resumed
    run trusts that the server's rows before the checkpoint still hold what was fetched; a
    periodic `--refetch` re-reads everything."""
    if refetch:
        checkpoint.unlink(missing_ok=True)
    sheet = client.get("/v1/balances")
    head = int(sheet["headSeq"])
    anchors = _anchor_records(client)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    after = 0
    if checkpoint.exists() and _same_ledger(client, checkpoint):
        with open(checkpoint, encoding="ascii") as f:
            try:
                for entry in log_format.ExportReader(f, name=str(checkpoint), require_end=False).entries():
                    if entry["seq"] > head:
                        break
                    rec.feed(entry)
                    after = entry["seq"]
            except (log_format.ExportInvalid, KeyError, TypeError):
                pass  # a torn last line: keep what was read, fetch the rest
        if after:
            _truncate_after(checkpoint, after)
            theirs = (client.get("/v1/log", params={"after": after - 1, "limit": 1}).get("entries") or [{}])[0]
            if theirs.get("chainHash") != rec.head_chain_hash:
                rec.flag("chain_hash", after, rec.head_chain_hash, theirs.get("chainHash"),
                         detail="the server's chain hash differs from the one fetched earlier: history was "
                                "rewritten since the checkpoint (run with --refetch to see where)")
    if not after:
        checkpoint.write_text(log_format.dumps(log_format.header(sheet.get("community", ""), head,
                                                                 int(time.time() * 1000))) + "\n")
    # the rest is fetched and appended; every cached entry is re-checked on each run anyway
    with open(checkpoint, "a", encoding="ascii") as out:
        while after < head:
            data = client.get("/v1/log", params={"after": after, "limit": page})
            entries = data.get("entries") or []
            if not entries:
                break
            for entry in entries:
                if entry["seq"] > head:
                    break
                rec.feed(entry)
                out.write(log_format.dumps(entry) + "\n")
                after = entry["seq"]
            out.flush()
            if progress is not None:
                progress(after, head)
            if entries[-1]["seq"] >= head or data.get("nextAfter") is None:
                break
    return ServerClaims(head_seq=head, balances=sheet.get("balances") or [],
                        contract=anchors.get("contract"), batches=_claimed(anchors.get("batches") or []))


def _same_ledger(client, checkpoint: Path) -> bool:
    """The checkpoint belongs to this server's ledger iff its genesis entry hash is the server's."""
    try:
        with open(checkpoint, encoding="ascii") as f:
            next(f)
            first = json.loads(next(f))
    except (OSError, StopIteration, ValueError, UnicodeDecodeError):
        return False
    theirs = (client.get("/v1/log", params={"after": 0, "limit": 1}).get("entries") or [{}])[0]
    return first.get("seq") == 1 and first.get("entryHash") == theirs.get("entryHash")


def _anchor_records(client) -> dict:
    from .config import WalletError
    try:
        return client.get("/v1/anchors", params={"limit": 1000})
    except WalletError as exc:
        if getattr(exc, "code", None) == "not_found":
            return {"contract": None, "batches": []}  # this cooperative does not anchor
        raise


def _truncate_after(path: Path, last_seq: int) -> None:
    """Drop anything after the line of `last_seq` (e.g. a line torn by a killed fetch)."""
    keep = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            keep.append(line)
            if line.startswith('{"seq":') or '"seq":' in line:
                try:
                    if json.loads(line).get("seq") == last_seq:
                        break
                except ValueError:
                    break
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)


# -- the chain ----------------------------------------------------------------------------
def chain_batches(chain) -> tuple[list[ChainBatch], list[str]]:
    events, problems = chain.batch_history()
    return [ChainBatch(e.first_seq, e.last_seq, e.root, e.tx_hash, e.block) for e in events], problems


def reconcile(*, export: Path | None = None, client=None, checkpoint: Path | None = None, chain=None,
              skip_chain: bool = False, deadline_s: int | None = 86_400, verify_signatures: bool = True,
              workers: int | None = None, progress=None, now_ms: int | None = None,
              refetch: bool = False) -> Report:
    """Run every check; raise ReconcileInputError for input that cannot be reconciled at all."""
    # the replay keeps this process busy: recovery gets the other cores (one at least)
    workers = workers if workers is not None else max(1, (os.cpu_count() or 1) - 1)
    checker = ProcessSignatures(workers) if verify_signatures and (os.cpu_count() or 1) > 1 and workers else None
    rec = Reconciler(signatures=checker, verify_signatures=verify_signatures)
    try:
        if export is not None:
            claims = feed_export(export, rec, progress)
        else:
            claims = feed_http(client, rec, checkpoint, progress=progress, refetch=refetch)
        rec.finish_log()
    finally:
        if checker is not None:
            checker.close()
    rec.compare_balances(claims.head_seq, claims.balances)
    if chain is not None:
        batches, problems = chain_batches(chain)
        rec.check_anchors(batches, claims.batches, now_ms=now_ms or int(time.time() * 1000),
                          deadline_ms=deadline_s * 1000 if deadline_s else None, chain_problems=problems)
    elif claims.contract and not skip_chain:
        raise ReconcileInputError(f"this ledger anchors to contract {claims.contract}: give --chain URL "
                                  "(a node of that chain) or --skip-chain to reconcile without it")
    return rec.report


# -- rendering ----------------------------------------------------------------------------
def render(report: Report, console) -> None:
    from rich.table import Table
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
        for d in report.discrepancies:
            t.add_row(d.check, str(d.seq if d.seq is not None else "-"), d.account or "-", d.currency or "-",
                      d.expected, d.found, d.detail)
        console.print(t)
        listed, total = len(report.discrepancies), sum(report.counts.values())
        if total > listed:
            console.print(f"... and {total - listed} more (counts above)")
    console.print("[green]RECONCILED: everything matches[/]" if report.ok else "[red]DISCREPANCIES FOUND[/]")


def register(app: typer.Typer) -> None:
    @app.command("reconcile")
    def reconcile_cmd(
        log: Path = typer.Option(None, "--log", help="Read an export file (`ayni export-log`) instead of the API"),
        api: str = typer.Option(None, "--api", help="Base URL of the Ayni service (default: config / $AYNI_API_URL)"),
        key: str = typer.Option(None, "--key", help="Treasurer's key (name, keystore file or address) to sign in with"),
        password_file: Path = typer.Option(None, "--password-file", help="File holding the keystore passphrase"),
        chain: str = typer.Option(None, "--chain", help="JSON-RPC URL of a node of the anchoring chain "
                                                       "(default: config / $AYNI_CHAIN_URL)"),
        contract: str = typer.Option(None, "--contract", help="Anchor contract (default: the one the server names)"),
        skip_chain: bool = typer.Option(False, "--skip-chain", help="Do not check anchors (say so in the report)"),
        deadline: int = typer.Option(86_400, "--anchor-deadline", min=0,
                                     help="Seconds after which an entry must be anchored (0: do not check)"),
        no_signatures: bool = typer.Option(False, "--no-signatures",
                                           help="Skip signature recovery (faster; digests and rules still checked)"),
        workers: int = typer.Option(None, "--workers", min=0, help="Processes for signature recovery (0: in this one; default: cores - 1)"),
        checkpoint: Path = typer.Option(None, "--checkpoint", help="Local copy of the fetched log, to resume from"),
        refetch: bool = typer.Option(False, "--refetch", help="Ignore the checkpoint and fetch the whole log again"),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable report"),
    ) -> None:
        """Verify the whole ledger independently: hashes, replayed balances, zero-sum, limits, anchors.

        Exit 0 only when everything matches; 1 when a discrepancy is found; 2 when the input
        cannot be reconciled (unreadable or truncated export, unreachable API or chain)."""
        from rich.console import Console
        from .main import _fail
        console = Console(stderr=as_json)
        client = None
        try:
            if log is None:
                client, checkpoint = _http_client(api, key, password_file, checkpoint)
            node = _connect_chain(chain, contract, log, client) if not skip_chain else None
            with _progress(console, as_json) as progress:
                report = reconcile(export=log, client=client, checkpoint=checkpoint, chain=node,
                                   skip_chain=skip_chain, deadline_s=deadline or None,
                                   verify_signatures=not no_signatures, workers=workers, progress=progress,
                                   refetch=refetch)
        except ReconcileInputError as exc:
            _fail(str(exc), 2)
        except Exception as exc:  # noqa: BLE001 - wallet/chain faults carry a one-line message
            message = _known_fault(exc)
            if message is None:
                raise
            _fail(message, 2)
        if skip_chain:
            report.checks_run.append("anchors NOT checked (--skip-chain)")
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=1))
        else:
            render(report, console)
        raise typer.Exit(0 if report.ok else 1)


def _known_fault(exc: Exception) -> str | None:
    if type(exc).__module__.startswith("ledger.chain"):
        return f"chain: {getattr(exc, 'code', 'error')}: {exc}"
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


def _http_client(api, key, password_file, checkpoint):
    from .client import open_client
    from .config import data_home, load_config
    cfg = load_config(api_url=api, keystore=key, password_file=password_file)
    client = open_client(cfg, purpose="reconciliation")
    if checkpoint is None:
        safe = "".join(ch if ch.isalnum() else "_" for ch in cfg.api_url)
        checkpoint = data_home() / "reconcile" / f"{safe}.jsonl"
    return client, checkpoint


def _connect_chain(chain_url, contract, log, client):
    from ledger.chain import AnchorChain
    from .config import load_config
    chain_url = chain_url or load_config().chain_url
    if not chain_url:
        return None  # reconcile() refuses if the ledger anchors and --skip-chain was not given
    if contract is None:
        contract = _contract_named_by(log, client)
    if contract is None:
        raise ReconcileInputError("the server names no anchor contract: give --contract or --skip-chain")
    return AnchorChain.connect(chain_url, contract_address=contract)


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
