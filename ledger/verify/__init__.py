"""The independent verifier's side: what a member or an auditor runs to check the server,
with ledger.core and web3 only (docs/anchoring.md, "Verifying"). Nothing here imports the
service, its database or the server's chain writer (ledger.chain), so a check does not go
through the code path it checks; tests/test_layering.py imports it all in a fresh interpreter and checks."""
