"""Kafka's group APIs: FindCoordinator, the classic membership protocol (JoinGroup,
SyncGroup, Heartbeat, LeaveGroup) over groups/classic.py, and OffsetCommit and
OffsetFetch over the group coordinator's store, the one gRPC groups use."""

from __future__ import annotations

from typing import Any

from odradek.broker.auth import operations as op
from odradek.broker.auth.access import Access
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.groups.classic import ClassicGroups
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.groups.types import OffsetCommit
from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err

GROUP_KEY = 0


class GroupApis:
    def __init__(self, coordinator: GroupCoordinator, classic: ClassicGroups) -> None:
        self.coordinator = coordinator
        self.classic = classic

    async def _find(self, key: str, key_type: int, access: Access) -> tuple[int, str, int, str,
                                                                           int]:
        """(node id, host, Kafka port, message, error code)."""
        try:
            if key_type != GROUP_KEY:
                raise BrokerError(Reason.INVALID_REQUEST,
                                  "only group coordinators exist: Odradek has no transactions")
            op.describe_group(access, key)
            info = await self.coordinator.find_coordinator(key)
            broker = self.coordinator.cluster.image.brokers.get(info.broker_id)
            if broker is None or broker.kafka_port <= 0:
                raise BrokerError(Reason.COORDINATOR_NOT_AVAILABLE,
                                  f"the coordinator, broker {info.broker_id}, has no Kafka "
                                  "listener registered")
            return info.broker_id, broker.host, broker.kafka_port, "", err.NONE
        except Exception as exc:
            code, message = err.error_of(exc, "FindCoordinator")
            return -1, "", -1, message, code

    async def find_coordinator(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(10, version)
        key_type = getattr(body, "key_type", GROUP_KEY)
        if version >= 4:
            coordinators = []
            for key in body.coordinator_keys:
                node, host, port, message, code = await self._find(key, key_type, access)
                coordinators.append(codec.nested(module, "Coordinator", key=key, node_id=node,
                                                 host=host, port=port, error_code=code,
                                                 error_message=message or None))
            return codec.make(module.FindCoordinatorResponse, coordinators=tuple(coordinators))
        node, host, port, message, code = await self._find(body.key, key_type, access)
        return codec.make(module.FindCoordinatorResponse, error_code=code,
                          error_message=message or None, node_id=node, host=host, port=port)

    async def join_group(self, version: int, body: Any, access: Access,
                         client_id: str) -> Any:
        cls = codec.response_schema(11, version)
        session_ms = codec.ms(body.session_timeout)
        rebalance_ms = codec.ms(getattr(body, "rebalance_timeout", session_ms))
        try:
            op.join_group(access, body.group_id)
            result = await self.classic.join(
                body.group_id, body.member_id, getattr(body, "group_instance_id", None),
                client_id, session_ms, rebalance_ms, body.protocol_type,
                tuple((p.name, bytes(p.metadata)) for p in body.protocols))
        except Exception as exc:
            code, _ = err.error_of(exc, "JoinGroup")
            return codec.make(cls, error_code=code, generation_id=-1, protocol_name="",
                              leader="", member_id=body.member_id, members=())
        module = codec.response_module(11, version)
        members = tuple(codec.nested(module, "JoinGroupResponseMember", member_id=m,
                                     group_instance_id=instance, metadata=meta)
                        for m, instance, meta in result.members)
        return codec.make(cls, error_code=err.NONE, generation_id=result.generation,
                          protocol_type=body.protocol_type, protocol_name=result.protocol,
                          leader=result.leader, member_id=result.member_id, members=members)

    async def sync_group(self, version: int, body: Any, access: Access) -> Any:
        cls = codec.response_schema(14, version)
        try:
            op.join_group(access, body.group_id)
            assignment = await self.classic.sync(
                body.group_id, body.member_id, body.generation_id,
                {a.member_id: bytes(a.assignment) for a in body.assignments})
        except Exception as exc:
            code, _ = err.error_of(exc, "SyncGroup")
            return codec.make(cls, error_code=code, assignment=b"")
        group = self.classic.describe(body.group_id)
        return codec.make(cls, error_code=err.NONE, assignment=assignment,
                          protocol_type=group.protocol_type if group else None,
                          protocol_name=group.protocol if group else None)

    def heartbeat(self, version: int, body: Any, access: Access) -> Any:
        cls = codec.response_schema(12, version)
        try:
            op.join_group(access, body.group_id)
            self.classic.heartbeat(body.group_id, body.member_id, body.generation_id)
        except Exception as exc:
            return codec.make(cls, error_code=err.error_of(exc, "Heartbeat")[0])
        return codec.make(cls, error_code=err.NONE)

    def leave_group(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(13, version)
        leaving = [(m.member_id, m.group_instance_id) for m in body.members] \
            if version >= 3 else [(body.member_id, None)]
        answers = []
        for member_id, instance in leaving:
            try:
                op.join_group(access, body.group_id)
                self.classic.leave(body.group_id, member_id)
                answers.append((member_id, instance, err.NONE))
            except Exception as exc:
                answers.append((member_id, instance, err.error_of(exc, "LeaveGroup")[0]))
        if version < 3:
            return codec.make(module.LeaveGroupResponse, error_code=answers[0][2])
        return codec.make(module.LeaveGroupResponse, error_code=err.NONE, members=tuple(
            codec.nested(module, "MemberResponse", member_id=m, group_instance_id=i,
                         error_code=c) for m, i, c in answers))

    async def offset_commit(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(8, version)
        generation = getattr(body, "generation_id_or_member_epoch",
                             getattr(body, "generation_id", -1))
        offsets = [OffsetCommit(t.name, p.partition_index, p.committed_offset,
                                p.committed_metadata or "")
                   for t in body.topics for p in t.partitions]
        code = err.NONE
        try:
            op.commit_offsets(access, body.group_id, [o.topic for o in offsets])
            await self.classic.commit(body.group_id, body.member_id, generation, offsets)
        except Exception as exc:
            code, _ = err.error_of(exc, "OffsetCommit")
        return codec.make(module.OffsetCommitResponse, topics=tuple(
            codec.nested(module, "OffsetCommitResponseTopic", name=t.name, partitions=tuple(
                codec.nested(module, "OffsetCommitResponsePartition",
                             partition_index=p.partition_index, error_code=code)
                for p in t.partitions))
            for t in body.topics))

    async def offset_fetch(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(9, version)
        asked = [(t.name, p) for t in body.topics for p in t.partition_indexes] \
            if body.topics is not None else []
        code = err.NONE
        committed: list[tuple[str, int, int, str]] = []
        try:
            op.fetch_offsets(access, body.group_id, [t for t, _ in asked])
            found = await self.coordinator.fetch(body.group_id, asked)
            committed = [(c.topic, c.partition, c.offset, c.metadata) for c in found
                         if body.topics is not None or access.may_describe_topic(c.topic)]
        except Exception as exc:
            code, _ = err.error_of(exc, "OffsetFetch")
            committed = [(t, p, -1, "") for t, p in asked]
        by_topic: dict[str, list[Any]] = {}
        for topic, partition, offset, metadata in committed:
            by_topic.setdefault(topic, []).append(codec.nested(
                module, "OffsetFetchResponsePartition", partition_index=partition,
                committed_offset=offset, committed_leader_epoch=-1, metadata=metadata,
                error_code=code if version < 2 else err.NONE))
        return codec.make(module.OffsetFetchResponse, error_code=code, topics=tuple(
            codec.nested(module, "OffsetFetchResponseTopic", name=name,
                         partitions=tuple(parts)) for name, parts in by_topic.items()))
