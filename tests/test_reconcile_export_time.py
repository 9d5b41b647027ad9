"""An export's time is the server's unsigned claim (docs/reconcile.md): without one, a log cut
inside an anchored batch would pass as an older export, so a missing or malformed exportedAt
is a discrepancy; and a batch that starts inside the export and ends beyond it, which only the
live log can settle, is always reported as a warning (text and JSON)."""
import json

import pytest
from rich.console import Console

from ledger.anchoring import Anchoring
from ledger.chain import AnchorChain
from ledger.core import log_format
from ledger.log_export import export_log
from wallet_cli.reconcile import reconcile, render

from .conftest import Community
from .test_reconcile import found


@pytest.fixture
def cut(tmp_path):
    """An export at head N, then a batch anchored over 1..N+2: the batch starts inside it."""
    c = Community(f"sqlite:///{tmp_path}/a.db")
    c.member("ana")
    c.member("bea")
    for i in range(3):
        c.ledger.submit(c.pay("ana", "bea", 5 + i))
    chain = AnchorChain.embedded()
    chain.deploy()
    path = tmp_path / "log.jsonl"
    export_log(c.ledger, path, anchor_contract=chain.contract_address)
    for i in range(2):
        c.ledger.submit(c.pay("bea", "ana", 1 + i))
    Anchoring(c.ledger, chain).run()
    yield c, chain, path
    c.dispose()


def _rewrite_header(path, **change):
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    for k, v in change.items():
        if v is None:
            header.pop(k)
        else:
            header[k] = v
    lines[0] = json.dumps(header, separators=(",", ":"), sort_keys=True)
    path.write_text("\n".join(lines) + "\n")


def test_a_batch_cut_by_the_export_is_a_loud_warning(cut):
    c, chain, path = cut
    head, _ = c.ledger.head()
    report = reconcile(export=path, chain=chain, workers=0)
    assert report.ok and report.batches_beyond == 1
    (warning,) = report.warnings
    assert f"chain batch 1..{head}" in warning and "--api" in warning
    assert report.as_dict()["warnings"] == [warning]
    console = Console(record=True, width=300)
    render(report, console)
    assert f"WARNING: chain batch 1..{head}" in console.export_text()


@pytest.mark.parametrize("exported_at", [None, "yesterday", 0, 1.5e12])
def test_an_export_without_a_usable_time_is_a_discrepancy(cut, exported_at):
    _, chain, path = cut
    _rewrite_header(path, exportedAt=exported_at)
    report = reconcile(export=path, chain=chain, workers=0)
    assert not report.ok
    (d,) = found(report, "export_time")
    assert d.found == ("missing" if exported_at is None else repr(exported_at))


def test_an_export_with_its_time_keeps_reconciling(cut):
    _, chain, path = cut
    assert "export_time" in reconcile(export=path, chain=chain, workers=0).checks_run
