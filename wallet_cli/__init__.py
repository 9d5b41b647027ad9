"""`ayni-wallet`: the member and treasurer command line."""
