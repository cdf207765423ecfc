"""Users and ACLs in the metadata log: their commands, their part of the image and its
snapshot form. Pure, like the rest of the package.

A user is a name and a SCRAM-SHA-512 credential (salt, iterations, StoredKey, ServerKey);
the password itself never reaches the broker (clients compute the credential). An ACL
binding is (principal, resource type, resource name, pattern type, operation, permission,
host), all strings, validated by `check_acl` before the controller proposes it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from odradek.broker.metadata._fields import Fields

RESOURCE_TYPES = ("topic", "group", "cluster", "producer_name")
PATTERN_TYPES = ("literal", "prefixed")
OPERATIONS = ("read", "write", "create", "delete", "alter", "describe", "describe_configs",
              "alter_configs", "idempotent_write", "all")
PERMISSIONS = ("allow", "deny")
CLUSTER_NAME = "odradek-cluster"  # the one cluster resource, named as Kafka's kafka-cluster
WILDCARD = "*"
MAX_USER_NAME = 256


@dataclass(frozen=True, order=True)
class Acl:
    principal: str  # "User:alice", or "User:*" for everyone
    resource_type: str
    resource_name: str
    pattern_type: str
    operation: str
    permission: str
    host: str = WILDCARD

    def to_json(self) -> dict[str, str]:
        return {"principal": self.principal, "resource_type": self.resource_type,
                "resource_name": self.resource_name, "pattern_type": self.pattern_type,
                "operation": self.operation, "permission": self.permission, "host": self.host}

    @classmethod
    def from_fields(cls, f: Fields) -> Acl:
        return cls(f.get_str("principal"), f.get_str("resource_type"),
                   f.get_str("resource_name"), f.get_str("pattern_type"),
                   f.get_str("operation"), f.get_str("permission"), f.get_str("host"))


def check_acl(acl: Acl) -> str | None:
    """What is wrong with a binding (a message), or None."""
    kind, _, name = acl.principal.partition(":")
    if kind != "User" or not name:
        return f"principal must look like User:<name> (or User:*), got {acl.principal!r}"
    for value, allowed, what in ((acl.resource_type, RESOURCE_TYPES, "resource type"),
                                 (acl.pattern_type, PATTERN_TYPES, "pattern type"),
                                 (acl.operation, OPERATIONS, "operation"),
                                 (acl.permission, PERMISSIONS, "permission")):
        if value not in allowed:
            return f"{what} must be one of {', '.join(allowed)}, got {value!r}"
    if not acl.resource_name:
        return "the resource name must not be empty"
    if acl.resource_type == "cluster" and acl.resource_name != CLUSTER_NAME:
        return f"the cluster resource is named {CLUSTER_NAME!r}, got {acl.resource_name!r}"
    if acl.pattern_type == "prefixed" and acl.resource_name == WILDCARD:
        return "a prefixed pattern of '*' means nothing; use literal '*' for every resource"
    if not acl.host:
        return "host must be an address or '*'"
    return None


@dataclass(frozen=True)
class UserCredential:
    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True)
class SecurityState:
    """The image's users (name -> credential) and ACL bindings (a set)."""

    users: Mapping[str, UserCredential] = field(default_factory=dict)
    acls: frozenset[Acl] = frozenset()
    # Random bytes the first controller writes once: what every broker derives its decoy
    # SCRAM salts from, so that unknown users look alike on every broker and restart.
    cluster_secret: bytes = b""


# --- commands ---------------------------------------------------------------------------


def _dump(type_: str, fields: dict[str, Any]) -> bytes:
    return json.dumps({"type": type_, **fields}, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _get_bytes(f: Fields, key: str) -> bytes:
    text = f.get_str(key)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{f.context}: field {key!r} must be base64") from None


@dataclass(frozen=True)
class UpsertUser:
    """Creates a user or replaces its credential."""

    TYPE: ClassVar[str] = "upsert_user"
    name: str
    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def credential(self) -> UserCredential:
        return UserCredential(self.mechanism, self.salt, self.iterations, self.stored_key,
                              self.server_key)

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name, "mechanism": self.mechanism,
                                 "salt": _b64(self.salt), "iterations": self.iterations,
                                 "stored_key": _b64(self.stored_key),
                                 "server_key": _b64(self.server_key)})


@dataclass(frozen=True)
class DeleteUser:
    TYPE: ClassVar[str] = "delete_user"
    name: str

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name})


@dataclass(frozen=True)
class CreateAcls:
    """Adds bindings (those already present stay as they are)."""

    TYPE: ClassVar[str] = "create_acls"
    acls: tuple[Acl, ...]

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"acls": [a.to_json() for a in self.acls]})


@dataclass(frozen=True)
class DeleteAcls:
    """Removes exactly these bindings (the controller resolved the user's filters)."""

    TYPE: ClassVar[str] = "delete_acls"
    acls: tuple[Acl, ...]

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"acls": [a.to_json() for a in self.acls]})


@dataclass(frozen=True)
class InitClusterSecret:
    """Sets the cluster secret if there is none yet (the first such command wins)."""

    TYPE: ClassVar[str] = "init_cluster_secret"
    secret: bytes

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"secret": _b64(self.secret)})


SecurityCommand = UpsertUser | DeleteUser | CreateAcls | DeleteAcls | InitClusterSecret
SECURITY_COMMANDS = (UpsertUser, DeleteUser, CreateAcls, DeleteAcls, InitClusterSecret)
MIN_CLUSTER_SECRET = 16


def _acl_list(f: Fields) -> tuple[Acl, ...]:
    return tuple(Acl.from_fields(Fields(f"{f.context} acl", raw)) for raw in f.get_list("acls"))


SECURITY_DECODERS: dict[str, Callable[[Fields], SecurityCommand]] = {
    UpsertUser.TYPE: lambda f: UpsertUser(
        f.get_str("name"), f.get_str("mechanism"), _get_bytes(f, "salt"),
        f.get_int("iterations"), _get_bytes(f, "stored_key"), _get_bytes(f, "server_key")),
    DeleteUser.TYPE: lambda f: DeleteUser(f.get_str("name")),
    CreateAcls.TYPE: lambda f: CreateAcls(_acl_list(f)),
    DeleteAcls.TYPE: lambda f: DeleteAcls(_acl_list(f)),
    InitClusterSecret.TYPE: lambda f: InitClusterSecret(_get_bytes(f, "secret")),
}


# --- apply and snapshots ----------------------------------------------------------------


def apply_security(state: SecurityState, cmd: SecurityCommand) -> SecurityState:
    """The state after the command; the same object when nothing changes. Bindings that
    are not valid (see check_acl) are skipped: a log written by a careless tool cannot
    put a half-understood rule in force."""
    if isinstance(cmd, UpsertUser):
        if not cmd.name or state.users.get(cmd.name) == cmd.credential():
            return state
        users = dict(state.users)
        users[cmd.name] = cmd.credential()
        return replace(state, users=users)
    if isinstance(cmd, DeleteUser):
        if cmd.name not in state.users:
            return state
        users = dict(state.users)
        del users[cmd.name]
        return replace(state, users=users)
    if isinstance(cmd, CreateAcls):
        added = {a for a in cmd.acls if check_acl(a) is None} - state.acls
        return replace(state, acls=state.acls | added) if added else state
    if isinstance(cmd, DeleteAcls):
        removed = state.acls & set(cmd.acls)
        return replace(state, acls=state.acls - removed) if removed else state
    if isinstance(cmd, InitClusterSecret):
        if state.cluster_secret or len(cmd.secret) < MIN_CLUSTER_SECRET:
            return state
        return replace(state, cluster_secret=cmd.secret)
    return state  # pragma: no cover - every security command is handled above


def encode_security(state: SecurityState) -> dict[str, Any]:
    return {
        "users": [
            {"name": name, "mechanism": c.mechanism, "salt": _b64(c.salt),
             "iterations": c.iterations, "stored_key": _b64(c.stored_key),
             "server_key": _b64(c.server_key)}
            for name, c in sorted(state.users.items())
        ],
        "acls": [a.to_json() for a in sorted(state.acls)],
        **({"cluster_secret": _b64(state.cluster_secret)} if state.cluster_secret else {}),
    }


def decode_security(raw: Any) -> SecurityState:
    """The state `encode_security` wrote; None (a snapshot from before users existed) is
    the empty state."""
    if raw is None:
        return SecurityState()
    top = Fields("metadata snapshot security", raw)
    users: dict[str, UserCredential] = {}
    for item in top.get_list("users"):
        f = Fields("metadata snapshot user", item)
        name = f.get_str("name")
        if name in users:
            raise ValueError(f"metadata snapshot lists user {name!r} twice")
        users[name] = UserCredential(f.get_str("mechanism"), _get_bytes(f, "salt"),
                                     f.get_int("iterations"), _get_bytes(f, "stored_key"),
                                     _get_bytes(f, "server_key"))
    acls = frozenset(Acl.from_fields(Fields("metadata snapshot acl", item))
                     for item in top.get_list("acls"))
    secret = _get_bytes(top, "cluster_secret") if "cluster_secret" in top.obj else b""
    return SecurityState(users=users, acls=acls, cluster_secret=secret)


def matching_acls(acls: Iterable[Acl], **wanted: str | None) -> list[Acl]:
    """Bindings whose fields equal every given (not None, not empty) value, sorted: the
    filter of ListAcls and DeleteAcls."""
    keys = {k: v for k, v in wanted.items() if v}
    return sorted(a for a in acls if all(getattr(a, k) == v for k, v in keys.items()))
