"""The asynchronous admin client: topics, configs, partitions, metadata and offsets."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

from odradek.client.acls import AclBinding, AclFilter, binding_from_pb, binding_pb, filter_pb
from odradek.client.connection import Cluster
from odradek.client.errors import OdradekError, from_rpc_error
from odradek.client.groups import GroupClient
from odradek.client.options import ConnectionOptions, client_cluster
from odradek.client.types import (
    BrokerConfig,
    CommittedOffset,
    DrainPlan,
    ElectionResult,
    GroupDescription,
    GroupSummary,
    Metadata,
    OffsetAnswer,
    OffsetChange,
    ProducerNameInfo,
    TopicDescription,
    TopicSummary,
    UserDescription,
)
from odradek.security import scram
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc

# Answers a call gets while the cluster elects a controller or a leader: the same call
# succeeds a moment later, so it is retried until the API timeout, as Kafka's admin client
# does. Unreachable brokers are not retried here: a wrong address or a TLS mismatch does
# not heal, and the caller should hear of it at once.
RETRY_REASONS = frozenset({"NOT_CONTROLLER", "LEADER_NOT_AVAILABLE"})
RETRY_BACKOFF_S = (0.05, 1.0)  # first and largest pause between tries

_SPECS = {
    "earliest": pb.OFFSET_SPEC_EARLIEST,
    "latest": pb.OFFSET_SPEC_LATEST,
    "timestamp": pb.OFFSET_SPEC_TIMESTAMP,
}


class Admin:
    """Manages topics, users, ACLs and groups. Calls go to any broker that answers
    (bootstrap first); the answers are plain values (odradek.client.types)."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] | None = None,
        *,
        request_timeout_ms: int = 30_000,
        api_timeout_ms: int = 60_000,
        tls: bool | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        cluster: Cluster | None = None,
        connection: ConnectionOptions | None = None,
    ) -> None:
        self._cluster = client_cluster(
            bootstrap, request_timeout_ms, cluster, connection,
            ConnectionOptions(tls, tls_ca, tls_cert, tls_key, username, password))
        self._owns_cluster = cluster is None
        if api_timeout_ms <= 0:
            raise ValueError(f"api_timeout_ms must be positive, got {api_timeout_ms}")
        self._timeout = request_timeout_ms / 1000
        self._api_timeout = api_timeout_ms / 1000
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

    async def _admin(self, method: str, request: Any) -> Any:
        return await self._call(self._cluster.admin_stub, method, request)

    async def _call(self, stub_for: Callable[[str], Any], method: str, request: Any) -> Any:
        """One call to any broker, tried again while the answer is RETRY_REASONS and the
        API timeout (api_timeout_ms, counted from the first try) has time left."""
        deadline = time.monotonic() + self._api_timeout
        pause, longest = RETRY_BACKOFF_S

        async def call(address: str) -> Any:
            timeout = max(0.001, min(self._timeout, deadline - time.monotonic()))
            return await getattr(stub_for(address), method)(request, timeout=timeout)

        while True:
            try:
                return await self._cluster.any_broker(call)
            except OdradekError as err:
                if err.reason not in RETRY_REASONS or time.monotonic() + pause >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 0,
        configs: Mapping[str, str] | None = None,
        validate_only: bool = False,
    ) -> TopicDescription:
        reply = await self._admin("CreateTopic", pb.CreateTopicRequest(
            name=name, partitions=partitions, replication_factor=replication_factor,
            configs=dict(configs or {}), validate_only=validate_only))
        return TopicDescription.from_pb(reply.topic)

    async def delete_topic(self, name: str) -> None:
        await self._admin("DeleteTopic", pb.DeleteTopicRequest(name=name))
        self._cluster.topics.pop(name, None)

    async def list_topics(self, include_internal: bool = False) -> list[TopicSummary]:
        reply = await self._admin("ListTopics",
                                  pb.ListTopicsRequest(include_internal=include_internal))
        return [TopicSummary.from_pb(t) for t in reply.topics]

    async def describe_topic(self, name: str) -> TopicDescription:
        return TopicDescription.from_pb(
            await self._admin("DescribeTopic", pb.DescribeTopicRequest(name=name)))

    async def alter_configs(
        self,
        name: str,
        set: Mapping[str, str] | None = None,  # noqa: A002 - mirrors the protocol field
        delete: Sequence[str] = (),
        validate_only: bool = False,
    ) -> TopicDescription:
        return TopicDescription.from_pb(await self._admin(
            "AlterTopicConfigs", pb.AlterTopicConfigsRequest(
                name=name, set=dict(set or {}), delete=list(delete),
                validate_only=validate_only)))

    async def alter_cluster_configs(
        self,
        set: Mapping[str, str] | None = None,  # noqa: A002 - mirrors the protocol field
        delete: Sequence[str] = (),
        validate_only: bool = False,
    ) -> dict[str, str]:
        """Cluster-wide topic config defaults, applied live to every topic that does not
        set them; returns the complete set after the change."""
        reply = await self._admin("AlterClusterConfigs", pb.AlterClusterConfigsRequest(
            set=dict(set or {}), delete=list(delete), validate_only=validate_only))
        return dict(reply.configs)

    async def describe_cluster_configs(self) -> dict[str, str]:
        reply = await self._admin("DescribeClusterConfigs", pb.DescribeClusterConfigsRequest())
        return dict(reply.configs)

    async def reassign_partition(
        self, topic: str, partition: int, replicas: list[int], validate_only: bool = False,
    ) -> TopicDescription:
        """Moves a partition's replicas to `replicas` (the first is the preferred leader).
        Returns at once; the move runs in the background (see target_replicas)."""
        return TopicDescription.from_pb(await self._admin(
            "ReassignPartition", pb.ReassignPartitionRequest(
                topic=topic, partition=partition, replicas=replicas,
                validate_only=validate_only)))

    async def drain_broker(self, broker_id: int, validate_only: bool = False) -> DrainPlan:
        """Moves every replica off a broker; returns the moves planned."""
        return DrainPlan.from_pb(await self._admin(
            "DrainBroker", pb.DrainBrokerRequest(broker_id=broker_id,
                                                 validate_only=validate_only)))

    async def create_partitions(
        self, name: str, total: int, validate_only: bool = False,
    ) -> TopicDescription:
        desc = TopicDescription.from_pb(await self._admin(
            "CreatePartitions", pb.CreatePartitionsRequest(
                name=name, total_count=total, validate_only=validate_only)))
        self._cluster.topics.pop(name, None)
        return desc

    async def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        """Kafka's DeleteRecords: the records of the partition below before_offset (-1:
        every committed one) go on every replica; returns the new log start offset."""
        request = pb.DeleteRecordsRequest(topic=topic, partition=partition,
                                          before_offset=before_offset,
                                          timeout_ms=int(self._timeout * 1000))

        async def call(stub: pb_grpc.AdminStub) -> int:
            reply = await stub.DeleteRecords(request, timeout=self._timeout)
            return int(reply.low_watermark)

        return await self._cluster.leader_call(topic, partition, call, timeout=self._timeout,
                                               stub=self._cluster.admin_stub)

    async def elect_leaders(
        self, partitions: Sequence[tuple[str, int]] | None = None, timeout_ms: int = 10_000,
    ) -> list[ElectionResult]:
        """Preferred-leader election: each partition's leader hands over to its first
        replica when that one is in sync (None: every partition of the cluster)."""
        reply = await self._admin("ElectLeaders", pb.ElectLeadersRequest(
            partitions=[pb.PartitionRef(topic=t, partition=p) for t, p in partitions or ()],
            timeout_ms=timeout_ms))
        return [ElectionResult.from_pb(r) for r in reply.results]

    async def describe_broker_configs(self, broker_id: int) -> list[BrokerConfig]:
        """The settings of one broker, each with its source; asked of that broker."""
        await self._cluster.refresh()
        address = self._cluster.brokers.get(broker_id)
        if address is None:
            known = ", ".join(map(str, sorted(self._cluster.brokers))) or "none"
            raise OdradekError(f"no broker {broker_id} is registered in the cluster (brokers: "
                               f"{known})", "BROKER_NOT_AVAILABLE",
                               metadata={"broker_id": str(broker_id)})
        try:
            reply = await self._cluster.admin_stub(address).DescribeBrokerConfigs(
                pb.DescribeBrokerConfigsRequest(), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return [BrokerConfig.from_pb(c) for c in reply.configs]

    async def metadata(self, topics: Sequence[str] | None = None) -> Metadata:
        return Metadata.from_pb(await self._cluster.refresh(list(topics) if topics else None))

    async def list_offsets(
        self, topic: str, partition: int, spec: str = "latest", timestamp_ms: int = 0,
    ) -> OffsetAnswer:
        """spec: earliest, latest or timestamp (the first offset at or after timestamp_ms)."""
        code = _SPECS.get(spec.lower())
        if code is None:
            raise ValueError(f"unknown offset spec {spec!r}: expected earliest, latest, timestamp")
        return OffsetAnswer.from_pb(
            await self._cluster.list_offsets(topic, partition, code, timestamp_ms))

    # -- users and ACLs ------------------------------------------------------------------

    async def list_producer_names(self, prefix: str = "") -> list[ProducerNameInfo]:
        """The named producers this principal may describe (write on a name implies it)."""
        reply = await self._admin("ListProducerNames",
                                  pb.ListProducerNamesRequest(prefix=prefix))
        return [ProducerNameInfo.from_pb(p) for p in reply.producers]

    async def _security(self, method: str, request: Any) -> Any:
        return await self._call(self._security_stub, method, request)

    def _security_stub(self, address: str) -> Any:
        return spb_grpc.SecurityStub(self._cluster.channel(address))  # type: ignore[no-untyped-call]

    @staticmethod
    def _user_request(name: str, password: str, iterations: int) -> spb.UpsertUserRequest:
        # The credential is computed here: the password never leaves this process.
        c = scram.make_credential(password, iterations)
        return spb.UpsertUserRequest(name=name, credential=spb.ScramCredential(
            mechanism=scram.MECHANISM, salt=c.salt, iterations=c.iterations,
            stored_key=c.stored_key, server_key=c.server_key))

    async def create_user(self, name: str, password: str,
                          iterations: int = scram.DEFAULT_ITERATIONS) -> UserDescription:
        """A SCRAM-SHA-512 user; ALREADY_EXISTS (USER_ALREADY_EXISTS) if there is one."""
        return UserDescription.from_pb(await self._security(
            "CreateUser", self._user_request(name, password, iterations)))

    async def alter_user(self, name: str, password: str,
                         iterations: int = scram.DEFAULT_ITERATIONS) -> UserDescription:
        """A new password; the user's sessions on every broker end."""
        return UserDescription.from_pb(await self._security(
            "AlterUser", self._user_request(name, password, iterations)))

    async def delete_user(self, name: str) -> None:
        await self._security("DeleteUser", spb.DeleteUserRequest(name=name))

    async def list_users(self) -> list[UserDescription]:
        reply = await self._security("ListUsers", spb.ListUsersRequest())
        return [UserDescription.from_pb(u) for u in reply.users]

    async def create_acls(self, bindings: Sequence[AclBinding]) -> None:
        """Adds bindings (see odradek.client.acls.acl); existing ones are kept."""
        await self._security("CreateAcls", spb.CreateAclsRequest(
            acls=[binding_pb(b) for b in bindings]))

    async def delete_acls(self, filters: Sequence[AclFilter]) -> list[AclBinding]:
        """Deletes every binding matching one of the filters; returns them."""
        reply = await self._security("DeleteAcls", spb.DeleteAclsRequest(
            filters=[filter_pb(f) for f in filters]))
        return [binding_from_pb(b) for b in reply.deleted]

    async def list_acls(self, filter: AclFilter | None = None) -> list[AclBinding]:  # noqa: A002
        reply = await self._security("ListAcls", spb.ListAclsRequest(
            filter=filter_pb(filter or AclFilter())))
        return [binding_from_pb(b) for b in reply.acls]

    # -- consumer groups -----------------------------------------------------------------

    async def list_groups(self) -> list[GroupSummary]:
        return [GroupSummary.from_pb(g) for g in await self._groups.list_groups()]

    async def describe_group(self, group_id: str) -> GroupDescription:
        """State, members, assignment, and per partition the committed offset, log end
        offset and lag."""
        return GroupDescription.from_pb(await self._groups.describe(group_id))

    async def delete_group(self, group_id: str) -> None:
        """Deletes the group and its committed offsets; refused while it has members."""
        await self._groups.delete(group_id)

    async def group_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        return await self._groups.committed(group_id)

    async def delete_group_offsets(
        self, group_id: str, topics: Mapping[str, Sequence[int]] | Sequence[str],
    ) -> list[CommittedOffset]:
        """Forgets the group's committed offsets of topics (a topic without partitions: all
        of them), as kafka-consumer-groups.sh --delete-offsets; the group stays. Refused
        while the group has members. Returns the offsets deleted."""
        request = gpb.DeleteOffsetsRequest(group_id=group_id,
                                           partitions=_topic_partitions(topics))
        return [CommittedOffset.from_pb(o) for o in await self._groups.delete_offsets(request)]

    async def reset_group_offsets(
        self, group_id: str, topics: Mapping[str, Sequence[int]] | Sequence[str] = (), *,
        to_earliest: bool = False, to_latest: bool = False,
        to_timestamp_ms: int | None = None, to_offset: int | None = None,
        shift_by: int | None = None, dry_run: bool = False,
    ) -> list[OffsetChange]:
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
        request = gpb.ResetOffsetsRequest(group_id=group_id, dry_run=dry_run,
                                          partitions=_topic_partitions(topics))
        [(field, value)] = given.items()
        setattr(request, field, value)
        return [OffsetChange.from_pb(c) for c in await self._groups.reset(request)]


def _topic_partitions(topics: Mapping[str, Sequence[int]] | Sequence[str],
                      ) -> list[gpb.TopicPartitions]:
    """Topics, with some of their partitions each or (a bare name) all of them."""
    items = topics.items() if isinstance(topics, Mapping) else [(t, []) for t in topics]
    return [gpb.TopicPartitions(topic=t, partitions=list(ps)) for t, ps in items]
