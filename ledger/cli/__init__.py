"""`ayni`: the operator's command line, a thin face over ledger.service.

Every command is a module-level function in this package, registered below, explicitly and
in one place: a command module that fails to import is an ImportError at start-up, never a
command that silently vanishes (tests/test_cli.py lists every command `ayni --help` shows).

    books.py      init, verify, balances, export-log
    serve.py      serve (HTTP API, web app, background anchoring and retention)
    anchoring.py  chain new-key, chain deploy, anchor, receipt
    demo.py       demo (a care cooperative end to end)
    costs.py      cost-report
    privacy.py    data-policy, retention run, stats, org add|remove|list
    bench.py      bench
    federation.py federation new-key|propose|accept|suspend|resume|end|alliances|status
    doctor.py     doctor (checks a deployment: database, file modes, chain, lag, disk)
    options.py    --db / --json, defined once; `fail`: one line, non-zero exit
    backup.py     backup, restore, check-tail (docs/backup.md)
"""
from __future__ import annotations

import sys

import typer

from ..core.errors import LedgerError
from . import anchoring, bench, books, costs, demo, federation, privacy, serve
from .options import print_error
from . import backup

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Ayni: mutual-credit ledger for platform cooperatives.")


def _group(name: str, help: str) -> typer.Typer:
    group = typer.Typer(no_args_is_help=True, help=help)
    app.add_typer(group, name=name)
    return group


app.command()(books.init)
app.command()(demo.demo)
app.command()(books.verify)
app.command()(books.balances)
app.command()(serve.serve)
chain_app = _group("chain", "The chain Ayni anchors to: keys and the Anchor contract.")
chain_app.command("new-key")(anchoring.chain_new_key)
chain_app.command("deploy")(anchoring.chain_deploy)
app.command()(anchoring.anchor)
app.command()(anchoring.receipt)
app.command("export-log")(books.export_log)
app.command("cost-report")(costs.cost_report)
app.command("data-policy")(privacy.data_policy)
retention_app = _group("retention", "Erase personal data the policy no longer lets us keep.")
retention_app.command("run")(privacy.retention_run)
app.command()(privacy.stats)
org_app = _group("org", "Accounts acting for a named organisation (for members' grants).")
org_app.command("add")(privacy.org_add)
org_app.command("remove")(privacy.org_remove)
org_app.command("list")(privacy.org_list)
app.command()(bench.bench)
fed_app = _group("federation", "Alliances with other communities and remote payments (docs/federation.md).")
for _name in ("new-key", "propose", "accept", "suspend", "resume", "end", "alliances", "status"):
    fed_app.command(_name)(getattr(federation, "federation_" + _name.replace("-", "_")))
app.command()(backup.backup)
app.command()(backup.restore)
app.command("check-tail")(backup.check_tail)
# registered after the others, so their order in `ayni --help` stays as it was
from . import doctor

app.command()(doctor.doctor)


def _storage_fault(exc: Exception) -> bool:
    """A database driver's exception the service did not translate into a LedgerError
    (recognised by module, so this face never imports the storage library)."""
    return type(exc).__module__.split(".")[0] in ("sqlalchemy", "psycopg", "sqlite3")


def main() -> None:
    try:
        app()
    except LedgerError as exc:  # anything a command did not catch still exits with one line
        print_error(str(exc))
        sys.exit(2 if exc.code == "unavailable" else 1)
    except Exception as exc:
        # chain adapter faults carry a code; a database the service could not reach, a message
        from ledger.verify.chain_types import ChainError  # the reader's and the writer's faults alike
        if isinstance(exc, ChainError):
            message, status = f"{exc.code}: {exc}", 1
        elif _storage_fault(exc):
            message, status = f"database error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", 2
        else:
            raise  # anything else is a bug: its traceback is what a report needs
        print_error(message)
        sys.exit(status)


if __name__ == "__main__":
    main()
