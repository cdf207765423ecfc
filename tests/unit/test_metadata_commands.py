"""Metadata commands: every command survives encode/decode; garbage is a clear ValueError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from odradek.broker.metadata.commands import (
    COMMAND_TYPES,
    AllocateProducerIds,
    AlterClusterConfigs,
    AlterTopicConfigs,
    Command,
    CreatePartitions,
    CreateTopic,
    DeleteTopic,
    ExpireNamedProducers,
    InitNamedProducer,
    InSyncReport,
    LeaderReport,
    PartitionLeader,
    PartitionLeaders,
    PartitionReplicas,
    PartitionsInSync,
    ReassignPartition,
    RegisterBroker,
    SetBrokerDraining,
    TouchNamedProducer,
    UnregisterBroker,
    decode_command,
    freeze_configs,
)
from odradek.broker.metadata.security import (
    Acl,
    CreateAcls,
    DeleteAcls,
    DeleteUser,
    InitClusterSecret,
    UpsertUser,
)
from tests.unit.metadata_strategies import commands


@given(commands())
def test_round_trip(cmd: Command) -> None:
    data = cmd.encode()
    assert decode_command(data) == cmd
    assert json.loads(data)["type"] == cmd.TYPE
    assert decode_command(data).encode() == data


EXAMPLES: list[Command] = [
    RegisterBroker(1, "broker-1.odradek", 9092, "zone-a"),
    UnregisterBroker(1),
    SetBrokerDraining(1, True),
    CreateTopic("orders", "7f3c", ((1, 2, 3), (2, 3, 1)), freeze_configs({"retention.ms": "1"})),
    DeleteTopic("orders"),
    AlterTopicConfigs("orders", freeze_configs({"cleanup.policy": "compact"})),
    AlterClusterConfigs(freeze_configs({"retention.ms": "86400000"})),
    CreatePartitions("orders", ((3, 1, 2),)),
    ReassignPartition("orders", 0, (4, 2, 3)),
    PartitionLeader("orders", 0, 2, 7, "7f3c"),
    PartitionReplicas("orders", 0, (1, 2, 3, 4), 120, "7f3c"),
    PartitionsInSync(2, (InSyncReport("orders", 0, 7, (2, 3), "7f3c"),
                         InSyncReport("audit", 3, 1, (2,)))),
    PartitionLeaders(2, (LeaderReport("orders", 0, 7, "7f3c"), LeaderReport("audit", 3, 1))),
    UpsertUser("alice", "SCRAM-SHA-512", b"salt" * 4, 4096, b"k" * 64, b"s" * 64),
    DeleteUser("alice"),
    CreateAcls((Acl("User:alice", "topic", "orders", "prefixed", "read", "allow", "*"),)),
    DeleteAcls((Acl("User:bob", "cluster", "odradek-cluster", "literal", "all", "deny", "::1"),)),
    InitClusterSecret(b"s" * 32),
    AllocateProducerIds(2, 1000, "2.9f3a.1"),
    InitNamedProducer("payments-writer", "0.77c1.4", at_ms=1_700_000_000_000),
    TouchNamedProducer("payments-writer", 7, 1_700_000_000_500),
    ExpireNamedProducers(("old-writer", "older"), 1_699_000_000_000),
]


def test_examples_cover_every_command_type() -> None:
    assert {cmd.TYPE for cmd in EXAMPLES} == COMMAND_TYPES
    for cmd in EXAMPLES:
        assert decode_command(cmd.encode()) == cmd


def test_encoding_is_compact_json() -> None:
    data = RegisterBroker(1, "h", 9092, None).encode()
    assert data == b'{"type":"register_broker","broker_id":1,"host":"h","port":9092,"rack":null}'


def test_configs_are_stored_sorted_and_hashable() -> None:
    a = CreateTopic("t", "id", ((1, 2),), freeze_configs({"b": "2", "a": "1"}))
    b = CreateTopic("t", "id", ((1, 2),), (("a", "1"), ("b", "2")))
    assert a == b and hash(a) == hash(b)
    assert a.configs_dict() == {"a": "1", "b": "2"}
    assert AlterTopicConfigs("t", freeze_configs({})).configs == ()


def test_lists_are_normalised_to_tuples() -> None:
    cmd = CreateTopic("t", "id", [[1, 2], [2, 3]], ())  # type: ignore[arg-type]
    assert cmd.assignments == ((1, 2), (2, 3))
    hash(cmd)


def test_producer_commands_written_before_request_ids_read_as_anonymous() -> None:
    assert decode_command(b'{"type":"allocate_producer_ids","broker_id":1,"count":5}') == \
        AllocateProducerIds(1, 5, "")
    assert decode_command(b'{"type":"init_named_producer","name":"w"}') == \
        InitNamedProducer("w", "")
    with pytest.raises(ValueError, match="'request_id' must be a string"):
        decode_command(b'{"type":"init_named_producer","name":"w","request_id":1}')


def test_unknown_fields_are_ignored() -> None:
    data = b'{"type":"delete_topic","name":"t","added_later":1}'
    assert decode_command(data).encode() == b'{"type":"delete_topic","name":"t"}'


@pytest.mark.parametrize(("data", "message"), [
    (b"", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"{not json", "not valid JSON"),
    (b"[1,2]", "must be a JSON object, got list"),
    (b'{"name":"t"}', "no string field 'type'"),
    (b'{"type":7}', "no string field 'type'"),
    (b'{"type":"create_user","name":"u"}', "unknown metadata command type 'create_user'"),
    (b'{"type":"delete_topic"}', "'delete_topic' is missing field 'name'"),
    (b'{"type":"unregister_broker","broker_id":"1"}', "field 'broker_id' must be an integer"),
    (b'{"type":"unregister_broker","broker_id":true}', "field 'broker_id' must be an integer"),
    (b'{"type":"unregister_broker","broker_id":1.5}', "field 'broker_id' must be an integer"),
    (b'{"type":"set_broker_draining","broker_id":1,"draining":1}', "must be true or false"),
    (b'{"type":"register_broker","broker_id":1,"host":"h","port":1,"rack":3}',
     "field 'rack' must be a string or null"),
    (b'{"type":"reassign_partition","topic":"t","partition":0,"replicas":[1,"2"]}',
     "field 'replicas' must be a list of integers"),
    (b'{"type":"create_topic","name":"t","topic_id":"i","assignments":[1],"configs":{}}',
     "field 'assignments' must be a list of lists of integers"),
    (b'{"type":"create_topic","name":"t","topic_id":"i","assignments":[],"configs":{"a":1}}',
     "field 'configs' must be an object of strings"),
])
def test_garbage_is_a_clear_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        decode_command(data)


def test_partition_leader_topic_id_is_optional() -> None:
    cmd = PartitionLeader("t", 0, 1, 5)
    assert cmd.topic_id is None
    assert decode_command(cmd.encode()) == cmd
