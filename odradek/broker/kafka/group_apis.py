"""Kafka's group APIs: FindCoordinator, the classic membership protocol (JoinGroup,
SyncGroup, Heartbeat, LeaveGroup) over groups/classic.py, and OffsetCommit and
OffsetFetch over the group coordinator's store, the one gRPC groups use."""

from __future__ import annotations

import uuid
from typing import Any

from odradek.broker.auth import operations as op
from odradek.broker.auth.access import Access
from odradek.broker.errors import BrokerError, Reason, to_broker_error
from odradek.broker.groups import consumer_protocol
from odradek.broker.groups.classic import EMPTY, STABLE, ClassicGroups
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.groups.state import Group
from odradek.broker.groups.types import ConsumerHeartbeat, OffsetCommit
from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err
from odradek.broker.listeners import Addresses

GROUP_KEY = 0
# How groups of Odradek's own protocol show to Kafka admin tools.
GRPC_PROTOCOL_TYPE = "odradek"
DEAD = "Dead"


class GroupApis:
    def __init__(self, coordinator: GroupCoordinator, classic: ClassicGroups,
                 addresses: Addresses) -> None:
        self.coordinator = coordinator
        self.classic = classic
        self.addresses = addresses

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
            where = self.addresses.of(broker) if broker is not None else None
            if where is None:
                raise BrokerError(Reason.COORDINATOR_NOT_AVAILABLE,
                                  f"the coordinator, broker {info.broker_id}, has no Kafka "
                                  "listener registered"
                                  + (f" named {self.addresses.name!r}"
                                     if self.addresses.name else ""))
            return info.broker_id, where[0], where[1], "", err.NONE
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

    async def consumer_group_heartbeat(self, version: int, body: Any, access: Access,
                                       client_id: str) -> Any:
        """KIP-848's one call: Odradek's coordinator assigns (groups/consumer_protocol.py);
        topics travel by id, as that protocol has them."""
        module = codec.response_module(68, version)
        image = self.coordinator.cluster.image
        try:
            op.join_group(access, body.group_id)
            if getattr(body, "subscribed_topic_regex", None):
                raise BrokerError(Reason.INVALID_REQUEST, "regular expression subscriptions "
                                  "are not served over the consumer protocol; subscribe to "
                                  "topic names, or use group.protocol=classic")
            topics = None if body.subscribed_topic_names is None else frozenset(
                # A topic the caller may not describe is neither assigned nor revealed.
                t for t in body.subscribed_topic_names if access.may_describe_topic(t))
            owned = None if body.topic_partitions is None else frozenset(
                (info.name, p) for tp in body.topic_partitions
                if (info := image.topic_by_id(tp.topic_id.hex)) is not None
                for p in tp.partitions)
            hb = ConsumerHeartbeat(body.member_id, body.member_epoch, body.instance_id,
                                   client_id, codec.ms(body.rebalance_timeout), topics, owned,
                                   body.server_assignor)
            result = await consumer_protocol.heartbeat(self.coordinator, body.group_id, hb)
        except Exception as exc:
            code, message = err.error_of(exc, "ConsumerGroupHeartbeat")
            error = to_broker_error(exc)
            if error is not None and error.reason == Reason.FENCED_MEMBER:
                code = err.FENCED_MEMBER_EPOCH  # the member joins again with epoch 0
            elif error is not None and "assignor" in error.metadata:
                code = err.UNSUPPORTED_ASSIGNOR
            return codec.make(module.ConsumerGroupHeartbeatResponse, error_code=code,
                              error_message=message, member_id=body.member_id or None,
                              member_epoch=-1, heartbeat_interval=0)
        assignment = None
        if result.assignment is not None:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(result.assignment):
                by_topic.setdefault(topic, []).append(partition)
            assignment = codec.nested(module, "Assignment", topic_partitions=tuple(
                codec.nested(module, "TopicPartitions", topic_id=uuid.UUID(hex=info.topic_id),
                             partitions=tuple(parts))
                for topic, parts in by_topic.items()
                if (info := image.topics.get(topic)) is not None))
        return codec.make(module.ConsumerGroupHeartbeatResponse, error_code=err.NONE,
                          error_message=None, member_id=result.member_id,
                          member_epoch=result.member_epoch,
                          heartbeat_interval=result.heartbeat_interval_ms,
                          assignment=assignment)

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
            if body.member_id and self.coordinator.protocol_members(body.group_id):
                # A member of the consumer protocol: its epoch is the generation.
                await self.coordinator.commit(body.group_id, body.member_id, generation,
                                              offsets)
            else:
                await self.classic.commit(body.group_id, body.member_id, generation,
                                          offsets)
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

    async def offset_delete(self, version: int, body: Any, access: Access) -> Any:
        """Forgets a group's committed offsets of the partitions named. Only in a group
        with no members (Kafka also allows it in a live group for topics the group does
        not subscribe to; Odradek answers NON_EMPTY_GROUP)."""
        module = codec.response_module(47, version)
        asked = [(t.name, tuple(p.partition_index for p in t.partitions)) for t in body.topics]
        code = err.NONE
        try:
            op.delete_offsets(access, body.group_id, [t for t, _ in asked])
            await self.coordinator.delete_offsets(body.group_id, tuple(asked))
        except Exception as exc:
            code = err.error_of(exc, "OffsetDelete")[0]
        # A partition without a committed offset is deleted already: it answers NONE.
        return codec.make(module.OffsetDeleteResponse, error_code=code, topics=tuple(
            codec.nested(module, "OffsetDeleteResponseTopic", name=name, partitions=tuple(
                codec.nested(module, "OffsetDeleteResponsePartition", partition_index=p,
                             error_code=err.NONE) for p in parts))
            for name, parts in asked))

    # ------------------------------------------------------------ group admin
    def _grpc_group(self, group_id: str) -> Group | None:
        try:
            return self.coordinator.describe_group(group_id)
        except BrokerError:
            return None

    def list_groups(self, version: int, body: Any, access: Access) -> Any:
        """The groups this broker coordinates (clients ask every broker), of both
        protocols, that the caller may describe."""
        module = codec.response_module(16, version)
        found: dict[str, tuple[str, str]] = {}
        for group in self.coordinator.groups():
            found[group.group_id] = (GRPC_PROTOCOL_TYPE if group.members else "",
                                     STABLE if group.members else EMPTY)
        for group_id, classic in list(self.classic.groups.items()):
            if classic.members:
                found[group_id] = (classic.protocol_type, classic.state)
        wanted = set(getattr(body, "states_filter", None) or ())
        return codec.make(module.ListGroupsResponse, error_code=err.NONE, groups=tuple(
            codec.nested(module, "ListedGroup", group_id=group_id, protocol_type=kind,
                         group_state=state)
            for group_id, (kind, state) in sorted(found.items())
            if access.allowed("group", group_id, "describe") and
            (not wanted or state in wanted)))

    def describe_groups(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(15, version)
        out = []
        for group_id in body.groups:
            values: dict[str, Any] = dict(error_code=err.NONE, group_id=group_id,
                                          group_state=DEAD, protocol_type="",
                                          protocol_data="", members=())
            try:
                op.describe_group(access, group_id)
                self.coordinator.protocol_members(group_id)  # NOT_COORDINATOR elsewhere
                classic = self.classic.describe(group_id)
                grpc_group = self._grpc_group(group_id)
                if classic is not None and classic.members:
                    values.update(group_state=classic.state,
                                  protocol_type=classic.protocol_type,
                                  protocol_data=classic.protocol, members=tuple(
                                      codec.nested(module, "DescribedGroupMember",
                                                   member_id=m.member_id,
                                                   group_instance_id=m.instance_id,
                                                   client_id=m.client_id, client_host="",
                                                   member_metadata=dict(m.protocols).get(
                                                       classic.protocol, b""),
                                                   member_assignment=m.assignment)
                                      for m in classic.members.values()))
                elif grpc_group is not None:
                    values.update(group_state=STABLE if grpc_group.members else EMPTY,
                                  protocol_type=GRPC_PROTOCOL_TYPE if grpc_group.members
                                  else "", protocol_data=grpc_group.strategy, members=tuple(
                                      codec.nested(module, "DescribedGroupMember",
                                                   member_id=m.member_id,
                                                   group_instance_id=m.instance_id or None,
                                                   client_id=m.client_id, client_host="",
                                                   member_metadata=b"", member_assignment=b"")
                                      for m in grpc_group.members.values()))
            except Exception as exc:
                values["error_code"] = err.error_of(exc, "DescribeGroups")[0]
            out.append(codec.nested(module, "DescribedGroup", **values,
                                    authorized_operations=-2147483648))
        return codec.make(module.DescribeGroupsResponse, groups=tuple(out))

    async def delete_groups(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(42, version)
        results = []
        for group_id in body.groups_names:
            code = err.NONE
            try:
                op.delete_group(access, group_id)
                await self.coordinator.delete(group_id)
            except Exception as exc:
                code = err.error_of(exc, "DeleteGroups")[0]
            results.append(codec.nested(module, "DeletableGroupResult", group_id=group_id,
                                        error_code=code))
        return codec.make(module.DeleteGroupsResponse, results=tuple(results))
