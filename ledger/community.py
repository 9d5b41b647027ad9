"""A new community's defaults: currencies and per-role limits a cooperative starts from
(each can be changed per account later with a treasurer-signed SetLimit)."""
from __future__ import annotations

import secrets

from .core.amounts import CRED, HOUR
from .core.state import Genesis, RoleDefault
from .core.typed_data import Domain
from .core.vocab import Role

# Chain id 31337 is the local development chain (Hardhat); production sets the chain
# the community anchors to. The salt, not the chain id, makes each community unique.
DEFAULT_CHAIN_ID = 31337

DEFAULT_ROLE_LIMITS = (
    # HOUR counts minutes: members may owe up to 10 h and hold up to 40 h, so nobody
    # hoards time and newcomers can receive care before they have given any.
    RoleDefault("HOUR", Role.MEMBER, 10 * 60, 40 * 60),
    RoleDefault("HOUR", Role.SHOP, 0, 0),
    RoleDefault("HOUR", Role.TREASURER, 0, None),
    # CRED counts cents: members may owe 100.00, shops 500.00 (they restock on credit).
    RoleDefault("CRED", Role.MEMBER, 100_00, None),
    RoleDefault("CRED", Role.SHOP, 500_00, None),
    RoleDefault("CRED", Role.TREASURER, 0, None),
)


def new_genesis(community: str, treasurer: str, *, chain_id: int = DEFAULT_CHAIN_ID,
                salt: bytes | None = None) -> Genesis:
    return Genesis(community=community,
                   domain=Domain(chain_id=chain_id, salt=salt or secrets.token_bytes(32)),
                   currencies=(HOUR, CRED), defaults=DEFAULT_ROLE_LIMITS, treasurer=treasurer)
