"""HTTP face of the ledger (FastAPI). Built in the HTTP API issue; nothing here yet."""
