"""The asynchronous admin client: topics, configs, partitions, metadata and offsets."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from odradek.client.auth import ScramLogin
from odradek.client.connection import Cluster
from odradek.client.groups import GroupClient
from odradek.security import scram
from odradek.security.tls import ClientTLS
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc

_SPECS = {
    "earliest": pb.OFFSET_SPEC_EARLIEST,
    "latest": pb.OFFSET_SPEC_LATEST,
    "timestamp": pb.OFFSET_SPEC_TIMESTAMP,
}


class Admin:
    """Manages topics. Calls go to any broker that answers (bootstrap first); the
    replies are the protocol's messages (TopicDescription, TopicSummary, ...)."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] | None = None,
        *,
        request_timeout_ms: int = 30_000,
        tls: bool | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self._cluster = cluster or Cluster(bootstrap, request_timeout_ms=request_timeout_ms,
                                         tls=ClientTLS.from_options(tls, tls_ca, tls_cert, tls_key),
                                         login=ScramLogin.from_options(username, password))
        self._owns_cluster = cluster is None
        self._timeout = request_timeout_ms / 1000
        self._groups = GroupClient(self._cluster)

    @property
    def cluster(self) -> Cluster:
        return self._cluster

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_cluster:
            await self._cluster.close()

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 0,
        configs: Mapping[str, str] | None = None,
        validate_only: bool = False,
    ) -> pb.TopicDescription:
        request = pb.CreateTopicRequest(
            name=name, partitions=partitions, replication_factor=replication_factor,
            configs=dict(configs or {}), validate_only=validate_only)

        async def call(address: str) -> pb.TopicDescription:
            resp: pb.CreateTopicResponse = await self._cluster.admin_stub(address).CreateTopic(
                request, timeout=self._timeout)
            return resp.topic

        return await self._cluster.any_broker(call)

    async def delete_topic(self, name: str) -> None:
        request = pb.DeleteTopicRequest(name=name)

        async def call(address: str) -> None:
            await self._cluster.admin_stub(address).DeleteTopic(request, timeout=self._timeout)

        await self._cluster.any_broker(call)
        self._cluster.topics.pop(name, None)

    async def list_topics(self, include_internal: bool = False) -> list[pb.TopicSummary]:
        request = pb.ListTopicsRequest(include_internal=include_internal)

        async def call(address: str) -> list[pb.TopicSummary]:
            resp = await self._cluster.admin_stub(address).ListTopics(
                request, timeout=self._timeout)
            return list(resp.topics)

        return await self._cluster.any_broker(call)

    async def describe_topic(self, name: str) -> pb.TopicDescription:
        request = pb.DescribeTopicRequest(name=name)

        async def call(address: str) -> pb.TopicDescription:
            resp: pb.TopicDescription = await self._cluster.admin_stub(address).DescribeTopic(
                request, timeout=self._timeout)
            return resp

        return await self._cluster.any_broker(call)

    async def alter_configs(
        self,
        name: str,
        set: Mapping[str, str] | None = None,  # noqa: A002 - mirrors the protocol field
        delete: Sequence[str] = (),
        validate_only: bool = False,
    ) -> pb.TopicDescription:
        request = pb.AlterTopicConfigsRequest(
            name=name, set=dict(set or {}), delete=list(delete), validate_only=validate_only)

        async def call(address: str) -> pb.TopicDescription:
            resp: pb.TopicDescription = await self._cluster.admin_stub(
                address).AlterTopicConfigs(request, timeout=self._timeout)
            return resp

        return await self._cluster.any_broker(call)

    async def reassign_partition(
        self, topic: str, partition: int, replicas: list[int], validate_only: bool = False,
    ) -> pb.TopicDescription:
        """Moves a partition's replicas to `replicas` (the first is the preferred leader).
        Returns at once; the move runs in the background (see target_replicas)."""
        request = pb.ReassignPartitionRequest(
            topic=topic, partition=partition, replicas=replicas, validate_only=validate_only)

        async def call(address: str) -> pb.TopicDescription:
            resp: pb.TopicDescription = await self._cluster.admin_stub(
                address).ReassignPartition(request, timeout=self._timeout)
            return resp

        return await self._cluster.any_broker(call)

    async def drain_broker(
        self, broker_id: int, validate_only: bool = False,
    ) -> pb.DrainBrokerResponse:
        """Moves every replica off a broker; returns the moves planned."""
        request = pb.DrainBrokerRequest(broker_id=broker_id, validate_only=validate_only)

        async def call(address: str) -> pb.DrainBrokerResponse:
            resp: pb.DrainBrokerResponse = await self._cluster.admin_stub(
                address).DrainBroker(request, timeout=self._timeout)
            return resp

        return await self._cluster.any_broker(call)

    async def create_partitions(
        self, name: str, total: int, validate_only: bool = False,
    ) -> pb.TopicDescription:
        request = pb.CreatePartitionsRequest(
            name=name, total_count=total, validate_only=validate_only)

        async def call(address: str) -> pb.TopicDescription:
            resp: pb.TopicDescription = await self._cluster.admin_stub(
                address).CreatePartitions(request, timeout=self._timeout)
            return resp

        desc = await self._cluster.any_broker(call)
        self._cluster.topics.pop(name, None)
        return desc

    async def metadata(self, topics: Sequence[str] | None = None) -> pb.MetadataResponse:
        return await self._cluster.refresh(list(topics) if topics else None)

    async def list_offsets(
        self, topic: str, partition: int, spec: str = "latest", timestamp_ms: int = 0,
    ) -> pb.ListOffsetsResponse:
        """spec: earliest, latest or timestamp (the first offset at or after timestamp_ms)."""
        code = _SPECS.get(spec.lower())
        if code is None:
            raise ValueError(f"unknown offset spec {spec!r}: expected earliest, latest, timestamp")
        return await self._cluster.list_offsets(topic, partition, code, timestamp_ms)

    # -- users and ACLs ------------------------------------------------------------------

    async def _security(self, method: str, request: Any) -> Any:
        async def call(address: str) -> Any:
            stub = spb_grpc.SecurityStub(self._cluster.channel(address))  # type: ignore[no-untyped-call]
            return await getattr(stub, method)(request, timeout=self._timeout)

        return await self._cluster.any_broker(call)

    @staticmethod
    def _user_request(name: str, password: str, iterations: int) -> spb.UpsertUserRequest:
        # The credential is computed here: the password never leaves this process.
        c = scram.make_credential(password, iterations)
        return spb.UpsertUserRequest(name=name, credential=spb.ScramCredential(
            mechanism=scram.MECHANISM, salt=c.salt, iterations=c.iterations,
            stored_key=c.stored_key, server_key=c.server_key))

    async def create_user(self, name: str, password: str,
                          iterations: int = scram.DEFAULT_ITERATIONS) -> spb.UserDescription:
        """A SCRAM-SHA-512 user; ALREADY_EXISTS (USER_ALREADY_EXISTS) if there is one."""
        return await self._security(  # type: ignore[no-any-return]
            "CreateUser", self._user_request(name, password, iterations))

    async def alter_user(self, name: str, password: str,
                         iterations: int = scram.DEFAULT_ITERATIONS) -> spb.UserDescription:
        """A new password; the user's sessions on every broker end."""
        return await self._security(  # type: ignore[no-any-return]
            "AlterUser", self._user_request(name, password, iterations))

    async def delete_user(self, name: str) -> None:
        await self._security("DeleteUser", spb.DeleteUserRequest(name=name))

    async def list_users(self) -> list[spb.UserDescription]:
        reply = await self._security("ListUsers", spb.ListUsersRequest())
        return list(reply.users)

    async def create_acls(self, bindings: Sequence[spb.AclBinding]) -> None:
        """Adds bindings (see odradek.client.acls.acl); existing ones are kept."""
        await self._security("CreateAcls", spb.CreateAclsRequest(acls=list(bindings)))

    async def delete_acls(self, filters: Sequence[spb.AclFilter]) -> list[spb.AclBinding]:
        """Deletes every binding matching one of the filters; returns them."""
        reply = await self._security("DeleteAcls", spb.DeleteAclsRequest(filters=list(filters)))
        return list(reply.deleted)

    async def list_acls(self, filter: spb.AclFilter | None = None) -> list[spb.AclBinding]:  # noqa: A002
        reply = await self._security("ListAcls", spb.ListAclsRequest(
            filter=filter or spb.AclFilter()))
        return list(reply.acls)

    # -- consumer groups -----------------------------------------------------------------

    async def list_groups(self) -> list[gpb.GroupSummary]:
        return await self._groups.list_groups()

    async def describe_group(self, group_id: str) -> gpb.GroupDescription:
        """State, members, assignment, and per partition the committed offset, log end
        offset and lag."""
        return await self._groups.describe(group_id)

    async def delete_group(self, group_id: str) -> None:
        """Deletes the group and its committed offsets; refused while it has members."""
        await self._groups.delete(group_id)

    async def group_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        return await self._groups.committed(group_id)

    async def reset_group_offsets(
        self, group_id: str, topics: Mapping[str, Sequence[int]] | Sequence[str] = (), *,
        to_earliest: bool = False, to_latest: bool = False,
        to_timestamp_ms: int | None = None, to_offset: int | None = None,
        shift_by: int | None = None, dry_run: bool = False,
    ) -> list[gpb.OffsetChange]:
        """Moves the group's committed offsets of topics (a topic without partitions: all of
        them; nothing: every partition with a committed offset). Exactly one target. Refused
        while the group has members; with dry_run only says what would change."""
        specs = {"to_earliest": to_earliest or None, "to_latest": to_latest or None,
                 "to_timestamp_ms": to_timestamp_ms, "to_offset": to_offset,
                 "shift_by": shift_by}
        given = {k: v for k, v in specs.items() if v is not None}
        if len(given) != 1:
            raise ValueError("give exactly one of to_earliest, to_latest, to_timestamp_ms, "
                             "to_offset, shift_by")
        items = topics.items() if isinstance(topics, Mapping) else [(t, []) for t in topics]
        request = gpb.ResetOffsetsRequest(
            group_id=group_id, dry_run=dry_run,
            partitions=[gpb.TopicPartitions(topic=t, partitions=list(ps)) for t, ps in items])
        [(field, value)] = given.items()
        setattr(request, field, value)
        return await self._groups.reset(request)
