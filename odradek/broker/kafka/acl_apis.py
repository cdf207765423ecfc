"""Kafka's ACL APIs (DescribeAcls, CreateAcls, DeleteAcls) over the same bindings in the
cluster metadata that gRPC's Security service reads and writes. Kafka's enums map to the
metadata's words; Kafka's cluster resource "kafka-cluster" is Odradek's one cluster."""

from __future__ import annotations

from typing import Any

from odradek.broker.auth import operations as op
from odradek.broker.auth.access import Access
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err
from odradek.broker.metadata.security import (
    CLUSTER_NAME,
    WILDCARD,
    Acl,
    CreateAcls,
    DeleteAcls,
    check_acl,
    matching_acls,
)
from odradek.security.hosts import canonical_host

KAFKA_CLUSTER = "kafka-cluster"
ANY = 1
# Kafka's enum numbers -> the metadata's words (ANY = 1 matches everything in filters).
RESOURCES = {2: "topic", 3: "group", 4: "cluster"}
PATTERNS = {3: "literal", 4: "prefixed"}
OPERATIONS = {2: "all", 3: "read", 4: "write", 5: "create", 6: "delete", 7: "alter",
              8: "describe", 10: "describe_configs", 11: "alter_configs",
              12: "idempotent_write"}
PERMISSIONS = {2: "deny", 3: "allow"}


def _word(table: dict[int, str], value: int, what: str) -> str:
    if value not in table:
        raise BrokerError(Reason.INVALID_ACL, f"{what} {value} is not supported")
    return table[value]


def _number(table: dict[int, str], word: str) -> int:
    return next(k for k, v in table.items() if v == word)


def _resource_name(resource_type: str, name: str | None) -> str | None:
    return CLUSTER_NAME if resource_type == "cluster" and name == KAFKA_CLUSTER else name


def _filter(f: Any, prefix: str) -> dict[str, str | None]:
    """A Kafka ACL filter as matching_acls' fields (None: any)."""
    def pick(table: dict[int, str], value: int, what: str) -> str | None:
        return None if value == ANY else _word(table, value, what)
    resource_type = pick(RESOURCES, getattr(f, f"resource_type{prefix}"), "resource type")
    name = _resource_name(resource_type or "", getattr(f, f"resource_name{prefix}"))
    pattern = getattr(f, f"pattern_type{prefix}", 3)
    return {"resource_type": resource_type, "resource_name": name,
            "pattern_type": pick(PATTERNS, pattern, "pattern type"),
            "principal": f.principal_filter, "host": canonical_host(f.host_filter)
            if f.host_filter else None,
            "operation": pick(OPERATIONS, f.operation, "operation"),
            "permission": pick(PERMISSIONS, f.permission_type, "permission")}


def _kafka_name(acl: Acl) -> str:
    return KAFKA_CLUSTER if acl.resource_type == "cluster" else acl.resource_name


class AclApis:
    def __init__(self, cluster: ClusterNode) -> None:
        self.cluster = cluster

    def describe_acls(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(29, version)
        try:
            op.describe_cluster(access)
            found = matching_acls(self.cluster.image.security.acls, **_filter(body, "_filter"))
        except Exception as exc:
            code, message = err.error_of(exc, "DescribeAcls")
            return codec.make(module.DescribeAclsResponse, error_code=code,
                              error_message=message, resources=())
        by_resource: dict[tuple[str, str, str], list[Acl]] = {}
        for acl in found:
            by_resource.setdefault((acl.resource_type, acl.resource_name, acl.pattern_type),
                                   []).append(acl)
        return codec.make(module.DescribeAclsResponse, error_code=err.NONE, error_message=None,
                          resources=tuple(codec.nested(
                              module, "DescribeAclsResource",
                              resource_type=_number(RESOURCES, rtype),
                              resource_name=_kafka_name(acls[0]),
                              pattern_type=_number(PATTERNS, pattern), acls=tuple(
                                  codec.nested(module, "AclDescription", principal=a.principal,
                                               host=a.host,
                                               operation=_number(OPERATIONS, a.operation),
                                               permission_type=_number(PERMISSIONS,
                                                                       a.permission))
                                  for a in acls))
                              for (rtype, _, pattern), acls in by_resource.items()))

    async def create_acls(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(30, version)
        results: list[tuple[int, str | None]] = []
        valid: list[Acl] = []
        try:
            op.alter_cluster(access)
        except Exception as exc:
            code, message = err.error_of(exc, "CreateAcls")
            return codec.make(module.CreateAclsResponse, results=tuple(
                codec.nested(module, "AclCreationResult", error_code=code,
                             error_message=message) for _ in body.creations))
        for c in body.creations:
            try:
                rtype = _word(RESOURCES, c.resource_type, "resource type")
                acl = Acl(c.principal, rtype, _resource_name(rtype, c.resource_name) or "",
                          _word(PATTERNS, getattr(c, "resource_pattern_type", 3),
                                "pattern type"),
                          _word(OPERATIONS, c.operation, "operation"),
                          _word(PERMISSIONS, c.permission_type, "permission"),
                          canonical_host(c.host or WILDCARD))
                problem = check_acl(acl)
                if problem is not None:
                    raise BrokerError(Reason.INVALID_ACL, problem)
                valid.append(acl)
                results.append((err.NONE, None))
            except Exception as exc:
                results.append(err.error_of(exc, "CreateAcls"))
        if valid:
            try:
                await self.cluster.propose(CreateAcls(tuple(sorted(set(valid)))))
            except Exception as exc:
                failed = err.error_of(exc, "CreateAcls")
                results = [failed if code == err.NONE else (code, m) for code, m in results]
        return codec.make(module.CreateAclsResponse, results=tuple(
            codec.nested(module, "AclCreationResult", error_code=code, error_message=message)
            for code, message in results))

    async def delete_acls(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(31, version)
        answers: list[tuple[int, str | None, list[Acl]]] = []
        try:
            op.alter_cluster(access)
            current = self.cluster.image.security.acls
            for f in body.filters:
                try:
                    answers.append((err.NONE, None,
                                    matching_acls(current, **_filter(f, "_filter"))))
                except Exception as exc:
                    answers.append((*err.error_of(exc, "DeleteAcls"), []))
            doomed = tuple(sorted({a for _, _, acls in answers for a in acls}))
            if doomed:
                await self.cluster.propose(DeleteAcls(doomed))
        except Exception as exc:
            code, message = err.error_of(exc, "DeleteAcls")
            answers = [(code, message, []) for _ in body.filters]
        return codec.make(module.DeleteAclsResponse, filter_results=tuple(
            codec.nested(module, "DeleteAclsFilterResult", error_code=code,
                         error_message=message, matching_acls=tuple(
                             codec.nested(module, "DeleteAclsMatchingAcl", error_code=err.NONE,
                                          error_message=None,
                                          resource_type=_number(RESOURCES, a.resource_type),
                                          resource_name=_kafka_name(a),
                                          pattern_type=_number(PATTERNS, a.pattern_type),
                                          principal=a.principal, host=a.host,
                                          operation=_number(OPERATIONS, a.operation),
                                          permission_type=_number(PERMISSIONS, a.permission))
                             for a in acls))
            for code, message, acls in answers))
