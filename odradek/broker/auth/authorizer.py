"""The ACL authorizer: pure, knows nothing of gRPC.

Rules, as in Kafka's ACL authorizer: with authorization off everything is allowed; super
users may do anything; otherwise a matching deny binding (for the operation or `all`)
refuses, whatever allows it; else a matching allow binding for the operation, for `all`
or for an operation that implies it (describe is implied by read, write, delete and
alter; describe_configs by alter_configs) allows; else the request is refused. A binding
matches when its principal is the caller's or `User:*`, its host is the caller's address
or `*`, and its resource has the type and matches the name: literally (`*` matching every
name) or as a prefix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from odradek.broker.metadata.security import WILDCARD, Acl

ANONYMOUS = "User:ANONYMOUS"
WILDCARD_PRINCIPAL = "User:*"
CACHE_LIMIT = 65_536

# operation -> the operations whose allow bindings also allow it
IMPLIED_BY: dict[str, frozenset[str]] = {
    "describe": frozenset({"read", "write", "delete", "alter"}),
    "describe_configs": frozenset({"alter_configs"}),
}


def resource_matches(acl: Acl, resource_type: str, name: str) -> bool:
    if acl.resource_type != resource_type:
        return False
    if acl.pattern_type == "prefixed":
        return name.startswith(acl.resource_name)
    return acl.resource_name in (WILDCARD, name)


@dataclass(frozen=True)
class Request:
    principal: str
    host: str
    resource_type: str
    name: str
    operation: str


class Authorizer:
    """Decides over one set of bindings; build a new one when the bindings change.
    Decisions are cached (the produce path asks the same question over and over)."""

    def __init__(self, acls: Iterable[Acl], super_users: Iterable[str] = (),
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.super_users = frozenset(super_users)
        self._by_principal: dict[str, list[Acl]] = {}
        for acl in acls:
            self._by_principal.setdefault(acl.principal, []).append(acl)
        self._cache: dict[Request, bool] = {}

    def is_super_user(self, principal: str) -> bool:
        return principal in self.super_users

    def allowed(self, principal: str, host: str, resource_type: str, name: str,
                operation: str) -> bool:
        if not self.enabled or principal in self.super_users:
            return True
        key = Request(principal, host, resource_type, name, operation)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._decide(key)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def _decide(self, r: Request) -> bool:
        candidates = self._by_principal.get(r.principal, []) + (
            self._by_principal.get(WILDCARD_PRINCIPAL, []) if r.principal != WILDCARD_PRINCIPAL
            else [])
        matching = [a for a in candidates if a.host in (WILDCARD, r.host)
                    and resource_matches(a, r.resource_type, r.name)]
        if any(a.permission == "deny" and a.operation in (r.operation, "all")
               for a in matching):
            return False
        granting = {r.operation, "all"} | IMPLIED_BY.get(r.operation, frozenset())
        return any(a.permission == "allow" and a.operation in granting for a in matching)

    def allowed_for_some(self, principal: str, host: str, resource_type: str,
                         operation: str) -> bool:
        """Whether the principal may do the operation on some resource of the type: an
        allow binding for it exists and no deny covers every name (Kafka's test for an
        idempotent producer without the cluster permission: write on any topic)."""
        if not self.enabled or principal in self.super_users:
            return True
        bindings = self._by_principal.get(principal, []) + (
            self._by_principal.get(WILDCARD_PRINCIPAL, []) if principal != WILDCARD_PRINCIPAL
            else [])
        mine = [a for a in bindings if a.resource_type == resource_type
                and a.host in (WILDCARD, host)]
        if any(a.permission == "deny" and a.operation in (operation, "all")
               and a.pattern_type == "literal" and a.resource_name == WILDCARD for a in mine):
            return False
        return any(a.permission == "allow" and a.operation in (operation, "all") for a in mine)
