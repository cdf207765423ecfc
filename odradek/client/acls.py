"""ACL bindings and filters from plain strings ("topic", "read", "allow"...), for Admin and
the CLI."""

from __future__ import annotations

from odradek.v1 import security_pb2 as spb

RESOURCE_TYPES = ("topic", "group", "cluster")
PATTERN_TYPES = ("literal", "prefixed")
OPERATIONS = ("all", "read", "write", "create", "delete", "alter", "describe",
              "describe_configs", "alter_configs", "idempotent_write")
PERMISSIONS = ("allow", "deny")
CLUSTER_NAME = "odradek-cluster"


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


def acl(principal: str, resource_type: str, resource_name: str, operation: str,
        permission: str = "allow", pattern_type: str = "literal",
        host: str = "*") -> spb.AclBinding:
    """A binding, e.g. acl("User:alice", "topic", "orders", "read")."""
    if resource_type == "cluster" and not resource_name:
        resource_name = CLUSTER_NAME
    return spb.AclBinding(
        principal=principal, resource_type=_enum(resource_type, RESOURCE_TYPES, "resource type"),  # type: ignore[arg-type]
        resource_name=resource_name,
        pattern_type=_enum(pattern_type, PATTERN_TYPES, "pattern type"),  # type: ignore[arg-type]
        operation=_enum(operation, OPERATIONS, "operation"),  # type: ignore[arg-type]
        permission=_enum(permission, PERMISSIONS, "permission"), host=host)  # type: ignore[arg-type]


def acl_filter(principal: str | None = None, resource_type: str | None = None,
               resource_name: str | None = None, operation: str | None = None,
               permission: str | None = None, pattern_type: str | None = None,
               host: str | None = None) -> spb.AclFilter:
    """A filter; what is not given matches anything."""
    return spb.AclFilter(
        principal=principal or "",
        resource_type=_enum(resource_type, RESOURCE_TYPES, "resource type"),  # type: ignore[arg-type]
        resource_name=resource_name or "",
        pattern_type=_enum(pattern_type, PATTERN_TYPES, "pattern type"),  # type: ignore[arg-type]
        operation=_enum(operation, OPERATIONS, "operation"),  # type: ignore[arg-type]
        permission=_enum(permission, PERMISSIONS, "permission"), host=host or "")  # type: ignore[arg-type]


def describe(b: spb.AclBinding) -> dict[str, str]:
    """A binding as plain strings."""
    return {"principal": b.principal,
            "resource_type": _text(b.resource_type, RESOURCE_TYPES),
            "resource_name": b.resource_name,
            "pattern_type": _text(b.pattern_type, PATTERN_TYPES),
            "operation": _text(b.operation, OPERATIONS),
            "permission": _text(b.permission, PERMISSIONS), "host": b.host}
