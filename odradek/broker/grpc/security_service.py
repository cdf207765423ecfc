"""The Security service: SCRAM authentication, users and ACLs. Thin like the other
servicers: checks the request's shape, proposes metadata commands, answers from the
image. Permission checks happen before (grpc/authorization.py, auth/operations.py)."""

from __future__ import annotations

import logging
import unicodedata

import grpc

from odradek.broker.auth.sessions import AuthenticationFailed, Sessions
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason, invalid_request
from odradek.broker.grpc.broker_service import rpc
from odradek.broker.logs import clip
from odradek.broker.metadata.security import (
    MAX_USER_NAME,
    OPERATIONS,
    PATTERN_TYPES,
    PERMISSIONS,
    RESOURCE_TYPES,
    WILDCARD,
    Acl,
    CreateAcls,
    DeleteAcls,
    DeleteUser,
    UpsertUser,
    check_acl,
    matching_acls,
)
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.security import scram
from odradek.security.hosts import canonical_host, peer_host
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc

log = logging.getLogger("odradek.broker")

# Enum values of the protocol <-> the metadata's strings (index = enum number).
_RESOURCE = ("", *RESOURCE_TYPES)
_PATTERN = ("", *PATTERN_TYPES)
_OPERATION = ("", "all", *(op for op in OPERATIONS if op != "all"))
_PERMISSION = ("", *PERMISSIONS)


def _name(table: tuple[str, ...], value: int, what: str) -> str:
    if not 0 <= value < len(table):
        raise invalid_request(f"unknown {what} {value}")
    return table[value]


def acl_from_proto(b: spb.AclBinding) -> Acl:
    acl = Acl(b.principal, _name(_RESOURCE, b.resource_type, "resource type"), b.resource_name,
              _name(_PATTERN, b.pattern_type, "pattern type") or "literal",
              _name(_OPERATION, b.operation, "operation"),
              _name(_PERMISSION, b.permission, "permission"), canonical_host(b.host or WILDCARD))
    problem = check_acl(acl)
    if problem is not None:
        raise BrokerError(Reason.INVALID_ACL, problem)
    return acl


def acl_to_proto(acl: Acl) -> spb.AclBinding:
    return spb.AclBinding(
        principal=acl.principal, resource_type=_RESOURCE.index(acl.resource_type),  # type: ignore[arg-type]
        resource_name=acl.resource_name, pattern_type=_PATTERN.index(acl.pattern_type),  # type: ignore[arg-type]
        operation=_OPERATION.index(acl.operation), permission=_PERMISSION.index(acl.permission),  # type: ignore[arg-type]
        host=acl.host)


def _filter_fields(f: spb.AclFilter) -> dict[str, str | None]:
    return {"principal": f.principal,
            "resource_type": _name(_RESOURCE, f.resource_type, "resource type"),
            "resource_name": f.resource_name,
            "pattern_type": _name(_PATTERN, f.pattern_type, "pattern type"),
            "operation": _name(_OPERATION, f.operation, "operation"),
            "permission": _name(_PERMISSION, f.permission, "permission"),
            "host": canonical_host(f.host) if f.host else f.host}


def check_user_name(name: str) -> None:
    if not name or len(name) > MAX_USER_NAME:
        raise invalid_request(f"a user name has 1 to {MAX_USER_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise invalid_request("a user name must not contain control characters")


def check_credential(c: spb.ScramCredential) -> None:
    if c.mechanism != scram.MECHANISM:
        raise invalid_request(f"mechanism must be {scram.MECHANISM}, got {c.mechanism!r}")
    if not scram.MIN_ITERATIONS <= c.iterations <= scram.MAX_ITERATIONS:
        raise invalid_request(f"iterations must be between {scram.MIN_ITERATIONS} and "
                              f"{scram.MAX_ITERATIONS}, got {c.iterations}")
    if len(c.salt) < scram.MIN_SALT_BYTES:
        raise invalid_request(f"the salt needs at least {scram.MIN_SALT_BYTES} bytes")
    if len(c.stored_key) != scram.KEY_BYTES or len(c.server_key) != scram.KEY_BYTES:
        raise invalid_request(f"stored_key and server_key must be {scram.KEY_BYTES} bytes "
                              "(SHA-512)")


def _unauthenticated(message: str = "authentication failed") -> BrokerError:
    return BrokerError(Reason.AUTHENTICATION_FAILED, message)


# SCRAM messages are short (a user name, a nonce, a proof): anything longer is refused
# before it is parsed, so that unauthenticated callers cannot make the broker work.
MAX_SCRAM_MESSAGE = 4096
MAX_EXCHANGE_ID = 128

def _check_size(field: str, value: str, limit: int = MAX_SCRAM_MESSAGE) -> None:
    if len(value) > limit:
        raise invalid_request(f"{field} is {len(value)} characters long; at most {limit}")


class SecurityService(spb_grpc.SecurityServicer):
    def __init__(self, cluster: ClusterNode, sessions: Sessions,
                 metrics: BrokerMetrics | None = None,
                 broker_principals: frozenset[str] = frozenset()) -> None:
        self.broker_principals = broker_principals
        self.cluster = cluster
        self.sessions = sessions
        self.metrics = metrics

    # ------------------------------------------------------------ authentication
    @rpc
    async def ScramStart(self, request: spb.ScramStartRequest,
                         context: grpc.aio.ServicerContext) -> spb.ScramStartResponse:
        if request.mechanism != scram.MECHANISM:
            raise BrokerError(Reason.UNSUPPORTED_SASL_MECHANISM,
                              f"mechanism {clip(request.mechanism)!r} is not supported; "
                              f"use {scram.MECHANISM}")
        # Checked before any parsing: nobody is authenticated yet.
        _check_size("client_first_message", request.client_first_message)
        try:
            exchange_id, first = self.sessions.start(request.client_first_message,
                                                     peer_host(context.peer() or ""))
        except scram.ScramError as exc:
            raise invalid_request(f"bad client-first-message: {exc}") from None
        except AuthenticationFailed as exc:
            raise BrokerError(Reason.THROTTLED, str(exc)) from None
        return spb.ScramStartResponse(exchange_id=exchange_id, server_first_message=first)

    @rpc
    async def ScramFinish(self, request: spb.ScramFinishRequest,
                          context: grpc.aio.ServicerContext) -> spb.ScramFinishResponse:
        _check_size("exchange_id", request.exchange_id, MAX_EXCHANGE_ID)
        _check_size("client_final_message", request.client_final_message)
        try:
            final, token, session = self.sessions.finish(request.exchange_id,
                                                         request.client_final_message)
        except AuthenticationFailed as exc:
            log.info("SCRAM authentication failed from %s (%s)", clip(context.peer()),
                     clip(str(exc)))
            raise _unauthenticated() from None
        return spb.ScramFinishResponse(
            server_final_message=final, session_token=token, principal=session.principal,
            expires_in_ms=int(self.sessions.lifetime_s * 1000))

    # ---------------------------------------------------------------------- users
    async def _upsert(self, request: spb.UpsertUserRequest, create: bool) -> spb.UserDescription:
        check_user_name(request.name)
        if f"User:{request.name}" in self.broker_principals:
            raise invalid_request(f"User:{request.name} is a broker principal: no SCRAM user "
                                  "may take its name")
        c = request.credential
        check_credential(c)
        exists = request.name in self.cluster.image.security.users
        if create and exists:
            raise BrokerError(Reason.USER_ALREADY_EXISTS,
                              f"user {request.name!r} already exists", {"user": request.name})
        if not create and not exists:
            raise BrokerError(Reason.USER_NOT_FOUND,
                              f"user {request.name!r} does not exist", {"user": request.name})
        await self.cluster.propose(UpsertUser(request.name, c.mechanism, c.salt, c.iterations,
                                              c.stored_key, c.server_key))
        return spb.UserDescription(name=request.name, mechanism=c.mechanism,
                                   iterations=c.iterations)

    @rpc
    async def CreateUser(self, request: spb.UpsertUserRequest,
                         context: grpc.aio.ServicerContext) -> spb.UserDescription:
        return await self._upsert(request, create=True)

    @rpc
    async def AlterUser(self, request: spb.UpsertUserRequest,
                        context: grpc.aio.ServicerContext) -> spb.UserDescription:
        return await self._upsert(request, create=False)

    @rpc
    async def DeleteUser(self, request: spb.DeleteUserRequest,
                         context: grpc.aio.ServicerContext) -> spb.DeleteUserResponse:
        if request.name not in self.cluster.image.security.users:
            raise BrokerError(Reason.USER_NOT_FOUND,
                              f"user {request.name!r} does not exist", {"user": request.name})
        await self.cluster.propose(DeleteUser(request.name))
        return spb.DeleteUserResponse()

    @rpc
    async def ListUsers(self, request: spb.ListUsersRequest,
                        context: grpc.aio.ServicerContext) -> spb.ListUsersResponse:
        users = self.cluster.image.security.users
        return spb.ListUsersResponse(users=[
            spb.UserDescription(name=name, mechanism=c.mechanism, iterations=c.iterations)
            for name, c in sorted(users.items())])

    # ----------------------------------------------------------------------- ACLs
    @rpc
    async def CreateAcls(self, request: spb.CreateAclsRequest,
                         context: grpc.aio.ServicerContext) -> spb.CreateAclsResponse:
        if not request.acls:
            raise invalid_request("no ACL bindings given")
        acls = tuple(sorted({acl_from_proto(b) for b in request.acls}))
        await self.cluster.propose(CreateAcls(acls))
        return spb.CreateAclsResponse()

    @rpc
    async def DeleteAcls(self, request: spb.DeleteAclsRequest,
                         context: grpc.aio.ServicerContext) -> spb.DeleteAclsResponse:
        if not request.filters:
            raise invalid_request("no ACL filters given (an empty filter matches every "
                                  "binding: pass one explicitly to delete them all)")
        current = self.cluster.image.security.acls
        matched: set[Acl] = set()
        for f in request.filters:
            matched.update(matching_acls(current, **_filter_fields(f)))
        deleted = tuple(sorted(matched))
        if deleted:
            await self.cluster.propose(DeleteAcls(deleted))
        return spb.DeleteAclsResponse(deleted=[acl_to_proto(a) for a in deleted])

    @rpc
    async def ListAcls(self, request: spb.ListAclsRequest,
                       context: grpc.aio.ServicerContext) -> spb.ListAclsResponse:
        found = matching_acls(self.cluster.image.security.acls,
                              **_filter_fields(request.filter))
        return spb.ListAclsResponse(acls=[acl_to_proto(a) for a in found])
