"""ACL bindings and filters as plain strings ("topic", "read", "allow"...), for Admin and
the CLI, and their protocol form."""

from __future__ import annotations

from dataclasses import dataclass

from odradek.v1 import security_pb2 as spb

RESOURCE_TYPES = ("topic", "group", "cluster", "producer_name")
PATTERN_TYPES = ("literal", "prefixed")
OPERATIONS = ("all", "read", "write", "create", "delete", "alter", "describe",
              "describe_configs", "alter_configs", "idempotent_write")
PERMISSIONS = ("allow", "deny")
CLUSTER_NAME = "odradek-cluster"


@dataclass(frozen=True)
class AclBinding:
    """principal "User:<name>" (or "User:*"), host a client address or "*"."""
    principal: str
    resource_type: str
    resource_name: str
    operation: str
    permission: str = "allow"
    pattern_type: str = "literal"
    host: str = "*"


@dataclass(frozen=True)
class AclFilter:
    """Every field left empty matches anything."""
    principal: str = ""
    resource_type: str = ""
    resource_name: str = ""
    operation: str = ""
    permission: str = ""
    pattern_type: str = ""
    host: str = ""


def _enum(value: str | None, choices: tuple[str, ...], what: str) -> int:
    """0 (unspecified) for None/empty, else 1 + the index of the choice."""
    if not value:
        return 0
    value = value.lower().replace("-", "_")
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return choices.index(value) + 1


def _text(value: int, choices: tuple[str, ...]) -> str:
    return choices[value - 1] if 0 < value <= len(choices) else ""


def _normal(value: str | None, choices: tuple[str, ...], what: str) -> str:
    return _text(_enum(value, choices, what), choices)


def acl(principal: str, resource_type: str, resource_name: str, operation: str,
        permission: str = "allow", pattern_type: str = "literal",
        host: str = "*") -> AclBinding:
    """A binding, e.g. acl("User:alice", "topic", "orders", "read"); ValueError for a
    word that is not one of the choices."""
    if resource_type == "cluster" and not resource_name:
        resource_name = CLUSTER_NAME
    return AclBinding(principal, _normal(resource_type, RESOURCE_TYPES, "resource type"),
                      resource_name, _normal(operation, OPERATIONS, "operation"),
                      _normal(permission, PERMISSIONS, "permission"),
                      _normal(pattern_type, PATTERN_TYPES, "pattern type"), host)


def acl_filter(principal: str | None = None, resource_type: str | None = None,
               resource_name: str | None = None, operation: str | None = None,
               permission: str | None = None, pattern_type: str | None = None,
               host: str | None = None) -> AclFilter:
    """A filter; what is not given matches anything."""
    return AclFilter(principal or "", _normal(resource_type, RESOURCE_TYPES, "resource type"),
                     resource_name or "", _normal(operation, OPERATIONS, "operation"),
                     _normal(permission, PERMISSIONS, "permission"),
                     _normal(pattern_type, PATTERN_TYPES, "pattern type"), host or "")


def binding_pb(b: AclBinding) -> spb.AclBinding:
    return spb.AclBinding(
        principal=b.principal,
        resource_type=_enum(b.resource_type, RESOURCE_TYPES, "resource type"),  # type: ignore[arg-type]
        resource_name=b.resource_name,
        pattern_type=_enum(b.pattern_type, PATTERN_TYPES, "pattern type"),  # type: ignore[arg-type]
        operation=_enum(b.operation, OPERATIONS, "operation"),  # type: ignore[arg-type]
        permission=_enum(b.permission, PERMISSIONS, "permission"), host=b.host)  # type: ignore[arg-type]


def filter_pb(f: AclFilter) -> spb.AclFilter:
    return spb.AclFilter(
        principal=f.principal,
        resource_type=_enum(f.resource_type, RESOURCE_TYPES, "resource type"),  # type: ignore[arg-type]
        resource_name=f.resource_name,
        pattern_type=_enum(f.pattern_type, PATTERN_TYPES, "pattern type"),  # type: ignore[arg-type]
        operation=_enum(f.operation, OPERATIONS, "operation"),  # type: ignore[arg-type]
        permission=_enum(f.permission, PERMISSIONS, "permission"), host=f.host)  # type: ignore[arg-type]


def binding_from_pb(m: spb.AclBinding) -> AclBinding:
    return AclBinding(m.principal, _text(m.resource_type, RESOURCE_TYPES), m.resource_name,
                      _text(m.operation, OPERATIONS), _text(m.permission, PERMISSIONS),
                      _text(m.pattern_type, PATTERN_TYPES), m.host)


def describe(b: AclBinding) -> dict[str, str]:
    """A binding as plain strings (in the protocol's field order)."""
    return {"principal": b.principal, "resource_type": b.resource_type,
            "resource_name": b.resource_name, "pattern_type": b.pattern_type,
            "operation": b.operation, "permission": b.permission, "host": b.host}
