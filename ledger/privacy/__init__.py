"""Data sovereignty: the data-use policy, members' sharing grants, purpose-bound access with
an access log, retention and erasure, and k-suppressed statistics (docs/privacy.md)."""
