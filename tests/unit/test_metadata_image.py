"""The metadata image: apply is deterministic and total, stale commands change nothing but
last_offset, snapshots round trip exactly, and queries answer from the image."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.metadata.commands import (
    AlterClusterConfigs,
    AlterTopicConfigs,
    Command,
    CreatePartitions,
    CreateTopic,
    DeleteTopic,
    InSyncReport,
    LeaderReport,
    PartitionLeader,
    PartitionLeaders,
    PartitionReplicas,
    PartitionsInSync,
    ReassignPartition,
    RegisterBroker,
    SetBrokerDraining,
    UnregisterBroker,
    freeze_configs,
)
from odradek.broker.metadata.image import (
    NO_LEADER,
    BrokerInfo,
    MetadataImage,
    PartitionInfo,
    apply,
    decode_snapshot,
    encode_snapshot,
    replay,
)
from tests.unit.metadata_strategies import small_commands


def build(*commands: Command) -> MetadataImage:
    return replay(MetadataImage(), enumerate(commands))


def cluster() -> MetadataImage:
    """Brokers 1-4 (racks a, a, b, none) and topic 'orders' with 2 partitions at RF 3."""
    return build(
        RegisterBroker(1, "h1", 9092, "a"),
        RegisterBroker(2, "h2", 9092, "a"),
        RegisterBroker(3, "h3", 9092, "b"),
        RegisterBroker(4, "h4", 9092, None),
        CreateTopic("orders", "id-orders", ((1, 2, 3), (2, 3, 4)),
                    freeze_configs({"retention.ms": "1000"})),
    )


def test_apply_builds_the_cluster() -> None:
    image = cluster()
    assert image.last_offset == 4
    assert image.brokers[4] == BrokerInfo(4, "h4", 9092, None, False)
    orders = image.topics["orders"]
    assert orders.topic_id == "id-orders"
    assert orders.configs == {"retention.ms": "1000"}
    assert orders.replication_factor == 3
    assert orders.partitions == (PartitionInfo((1, 2, 3)), PartitionInfo((2, 3, 4)))
    assert image.partition("orders", 1) == PartitionInfo((2, 3, 4))
    assert image.partition("orders", 2) is None
    assert image.partition("orders", -1) is None
    assert image.partition("nope", 0) is None


STALE: list[Command] = [
    CreateTopic("orders", "id-other", ((1,),)),           # name exists
    CreateTopic("other", "id-orders", ((1,),)),           # topic id in use
    CreateTopic("other", "id-x", ()),                     # no partitions
    CreateTopic("other", "id-x", ((1, 1),)),              # duplicate replica
    CreateTopic("other", "id-x", ((),)),                  # empty replica list
    DeleteTopic("missing"),
    AlterTopicConfigs("missing", freeze_configs({"a": "b"})),
    AlterTopicConfigs("orders", freeze_configs({"retention.ms": "1000"})),  # same configs
    CreatePartitions("missing", ((1, 2),)),
    CreatePartitions("orders", ()),
    CreatePartitions("orders", ((1, 1),)),
    ReassignPartition("missing", 0, (1, 2)),
    ReassignPartition("orders", 5, (1, 2)),
    ReassignPartition("orders", 0, ()),
    ReassignPartition("orders", 0, (1, 2, 3)),            # already the replicas
    PartitionLeader("missing", 0, 1, 9),
    PartitionLeader("orders", 9, 1, 9),
    PartitionLeader("orders", 0, 2, 4),                   # older term
    PartitionLeader("orders", 0, 3, 5),                   # same term, another leader
    PartitionLeader("orders", 0, 2, 9, topic_id="id-old"),  # a deleted topic's report
    PartitionLeader("orders", 0, -1, 9),
    PartitionReplicas("orders", 0, (1, 2, 3, 4), 10),     # config offset not newer
    PartitionReplicas("orders", 0, (1, 2), 11, topic_id="id-old"),
    PartitionReplicas("orders", 0, (), 11),
    PartitionsInSync(1, (InSyncReport("orders", 0, 4, (1,)),)),        # older term
    PartitionsInSync(2, (InSyncReport("orders", 0, 5, (2,)),)),        # not the leader
    PartitionsInSync(1, (InSyncReport("orders", 0, 5, (2, 3)),)),      # leaves itself out
    PartitionsInSync(1, (InSyncReport("orders", 0, 5, (1,), "id-old"),)),
    PartitionsInSync(1, (InSyncReport("orders", 7, 5, (1,)), InSyncReport("gone", 0, 5, (1,)))),
    PartitionLeaders(2, (LeaderReport("orders", 0, 5),                 # not a later term
                         LeaderReport("orders", 0, 6, "id-old"),       # another topic's
                         LeaderReport("orders", 9, 6), LeaderReport("gone", 0, 6))),
    RegisterBroker(1, "h1", 9092, "a"),                   # same registration
    UnregisterBroker(99),
    SetBrokerDraining(99, True),
    SetBrokerDraining(1, False),                          # already not draining
]


@pytest.mark.parametrize("command", STALE, ids=lambda c: type(c).__name__)
def test_stale_commands_change_only_last_offset(command: Command) -> None:
    base = cluster()
    base = apply(base, 10, PartitionLeader("orders", 0, 1, 5))
    base = apply(base, 11, PartitionReplicas("orders", 0, (1, 2, 3), 10))
    assert base.partition("orders", 0) == PartitionInfo((1, 2, 3), None, 1, 5, 10)
    after = apply(base, 20, command)
    assert after == replace(base, last_offset=20)


def test_in_sync_reports_of_the_leader_are_recorded_until_a_new_leader() -> None:
    image = build(RegisterBroker(1, "h", 1), CreateTopic("t", "id", ((1, 2, 3), (2, 3, 1))),
                  PartitionLeader("t", 0, 1, 4, "id"), PartitionLeader("t", 1, 1, 2, "id"))
    image = apply(image, 10, PartitionsInSync(1, (
        InSyncReport("t", 0, 4, (1, 3), "id"), InSyncReport("t", 1, 2, (1, 2, 3)))))
    assert image.partition("t", 0).in_sync == (1, 3)
    assert image.partition("t", 1).in_sync == (1, 2, 3)
    assert decode_snapshot(encode_snapshot(image)) == image
    # A new leader's election clears what the old one said; its own report then counts.
    image = apply(image, 11, PartitionLeader("t", 0, 3, 5, "id"))
    assert image.partition("t", 0).in_sync is None
    assert apply(image, 12, PartitionsInSync(1, (InSyncReport("t", 0, 4, (1,)),))) \
        == replace(image, last_offset=12)
    assert apply(image, 12, PartitionsInSync(3, (InSyncReport("t", 0, 5, (3,)),))) \
        .partition("t", 0).in_sync == (3,)


def test_snapshots_without_in_sync_reports_still_read() -> None:
    image = build(RegisterBroker(1, "h", 1), CreateTopic("t", "id", ((1,),)))
    doc = json.loads(encode_snapshot(image))
    del doc["topics"][0]["partitions"][0]["in_sync"]
    assert decode_snapshot(json.dumps(doc).encode()) == image


def test_entries_at_or_below_last_offset_are_skipped() -> None:
    image = cluster()
    assert apply(image, 4, DeleteTopic("orders")) is image
    assert apply(image, 0, DeleteTopic("orders")) is image
    assert "orders" not in apply(image, 5, DeleteTopic("orders")).topics


def test_apply_never_mutates_the_old_image() -> None:
    image = apply(cluster(), 5, PartitionLeader("orders", 0, 1, 1))
    before = encode_snapshot(image)
    for i, cmd in enumerate([
        PartitionLeader("orders", 0, 2, 2), ReassignPartition("orders", 1, (1, 3, 4)),
        AlterTopicConfigs("orders", ()), SetBrokerDraining(1, True), UnregisterBroker(2),
        CreatePartitions("orders", ((4, 1, 3),)), DeleteTopic("orders"),
    ]):
        apply(image, 10 + i, cmd)
    assert encode_snapshot(image) == before


def test_cluster_configs_are_replaced_whole_and_kept_in_snapshots() -> None:
    image = apply(cluster(), 5, AlterClusterConfigs((("retention.ms", "1000"),)))
    assert image.cluster_configs == {"retention.ms": "1000"}
    assert decode_snapshot(encode_snapshot(image)).cluster_configs == {"retention.ms": "1000"}
    image = apply(image, 6, AlterClusterConfigs((("segment.bytes", "4096"),)))
    assert image.cluster_configs == {"segment.bytes": "4096"}
    # Snapshots without any (or from before they existed) read as none.
    assert b"cluster_configs" not in encode_snapshot(cluster())
    assert decode_snapshot(encode_snapshot(cluster())).cluster_configs == {}


def test_reregistration_updates_the_address_and_keeps_draining() -> None:
    image = build(RegisterBroker(1, "old", 1, "a"), SetBrokerDraining(1, True),
                  RegisterBroker(1, "new", 2, "b"))
    assert image.brokers[1] == BrokerInfo(1, "new", 2, "b", True)


def test_unregistering_a_leader_forgets_the_leader_but_keeps_the_term() -> None:
    image = apply(cluster(), 5, PartitionLeader("orders", 0, 2, 3))
    image = apply(image, 6, PartitionLeader("orders", 1, 3, 1))
    image = apply(image, 7, UnregisterBroker(2))
    assert 2 not in image.brokers
    assert image.partition("orders", 0) == PartitionInfo((1, 2, 3), None, NO_LEADER, 3)
    assert image.partition("orders", 1) == PartitionInfo((2, 3, 4), None, 3, 1)
    # A late report from the old term stays stale; a newer term is recorded.
    assert apply(image, 8, PartitionLeader("orders", 0, 2, 3)).partition("orders", 0) == \
        image.partition("orders", 0)
    assert apply(image, 8, PartitionLeader("orders", 0, 1, 4)).partition("orders", 0) == \
        PartitionInfo((1, 2, 3), None, 1, 4)


def test_leader_reports_with_topic_id_only_apply_to_that_topic() -> None:
    image = build(RegisterBroker(1, "h", 1), CreateTopic("t", "old", ((1,),)),
                  PartitionLeader("t", 0, 1, 40, "old"), DeleteTopic("t"),
                  CreateTopic("t", "new", ((1,),)))
    assert image.partition("t", 0) == PartitionInfo((1,))
    assert apply(image, 9, PartitionLeader("t", 0, 1, 39, "old")) == replace(image, last_offset=9)
    assert apply(image, 9, PartitionLeader("t", 0, 1, 1, "new")).partition("t", 0) == \
        PartitionInfo((1,), None, 1, 1)


def test_reassignment_moves_through_membership_reports() -> None:
    image = apply(cluster(), 5, ReassignPartition("orders", 0, (4, 2, 3)))
    assert image.partition("orders", 0) == PartitionInfo((1, 2, 3), (4, 2, 3))
    assert image.replicas_of(4) == [("orders", 1)]
    assert image.replicas_of(4, include_targets=True) == [("orders", 0), ("orders", 1)]
    image = apply(image, 6, PartitionReplicas("orders", 0, (1, 2, 3, 4), 100))
    assert image.partition("orders", 0) == PartitionInfo((1, 2, 3, 4), (4, 2, 3), -1, -1, 100)
    image = apply(image, 7, PartitionReplicas("orders", 0, (2, 3, 4), 101))
    # Done: the target's order (4 is the preferred leader) is adopted.
    assert image.partition("orders", 0) == PartitionInfo((4, 2, 3), None, -1, -1, 101)


def test_reassignment_to_the_same_members_in_another_order_is_immediate() -> None:
    image = apply(cluster(), 5, ReassignPartition("orders", 0, (3, 1, 2)))
    assert image.partition("orders", 0) == PartitionInfo((3, 1, 2))


def test_reassigning_back_to_the_current_replicas_cancels() -> None:
    image = apply(cluster(), 5, ReassignPartition("orders", 0, (4, 2, 3)))
    image = apply(image, 6, ReassignPartition("orders", 0, (1, 2, 3)))
    assert image.partition("orders", 0) == PartitionInfo((1, 2, 3))


def test_membership_reports_without_a_target_keep_the_order() -> None:
    image = apply(cluster(), 5, PartitionReplicas("orders", 0, (3, 5, 1), 7))
    assert image.partition("orders", 0) == PartitionInfo((1, 3, 5), None, -1, -1, 7)


def test_create_partitions_appends() -> None:
    image = apply(cluster(), 5, CreatePartitions("orders", ((3, 4, 1), (4, 1, 2))))
    assert [p.replicas for p in image.topics["orders"].partitions] == [
        (1, 2, 3), (2, 3, 4), (3, 4, 1), (4, 1, 2)]


def test_queries() -> None:
    image = replay(cluster(), [
        (5, PartitionLeader("orders", 0, 2, 1)),
        (6, PartitionLeader("orders", 1, 2, 1)),
        (7, ReassignPartition("orders", 1, (4, 3, 1))),
        (8, SetBrokerDraining(3, True)),
    ])
    assert image.replicas_of(2) == [("orders", 0), ("orders", 1)]
    assert image.replicas_of(9) == []
    assert image.leader_counts() == {2: 2}
    assert image.replica_counts() == {1: 2, 2: 1, 3: 2, 4: 1}
    assert image.preferred_leader_counts() == {1: 1, 2: 0, 3: 0, 4: 1}
    assert [b.id for b in image.available_brokers()] == [1, 2, 4]
    assert image.topic_by_id("id-orders") is image.topics["orders"]
    assert image.topic_by_id("nope") is None


# --- determinism and snapshots ---------------------------------------------------------

sequences = st.lists(small_commands(), max_size=40)


@settings(max_examples=150, deadline=None)
@given(sequences)
def test_apply_is_deterministic(commands: list[Command]) -> None:
    a = build(*commands)
    b = build(*commands)
    assert a == b
    assert encode_snapshot(a) == encode_snapshot(b)
    assert a.last_offset == len(commands) - 1


@settings(max_examples=150, deadline=None)
@given(sequences, st.data())
def test_snapshot_midway_then_replay_equals_full_replay(commands: list[Command],
                                                         data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(commands)))
    entries = list(enumerate(commands))
    mid = replay(MetadataImage(), entries[:cut])
    restored = decode_snapshot(encode_snapshot(mid))
    assert restored == mid
    assert encode_snapshot(restored) == encode_snapshot(mid)
    full = replay(MetadataImage(), entries)
    # Replaying the whole log over the snapshot is safe too: older entries are skipped.
    assert replay(restored, entries[cut:]) == full
    assert replay(restored, entries) == full


@settings(max_examples=100, deadline=None)
@given(sequences)
def test_image_invariants(commands: list[Command]) -> None:
    image = build(*commands)
    ids = [t.topic_id for t in image.topics.values()]
    assert len(ids) == len(set(ids))
    for name, info in image.topics.items():
        assert info.name == name and info.partitions
        for part in info.partitions:
            assert part.replicas and len(set(part.replicas)) == len(part.replicas)
            assert part.target_replicas is None or set(part.target_replicas) != set(
                part.replicas)


@pytest.mark.parametrize(("data", "message"), [
    (b"nope", "not valid JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"version":2,"last_offset":1,"brokers":[],"topics":[]}', "version 2 is not supported"),
    (b'{"version":1,"brokers":[],"topics":[]}', "missing field 'last_offset'"),
    (b'{"version":1,"last_offset":1,"brokers":{},"topics":[]}', "'brokers' must be a list"),
    (b'{"version":1,"last_offset":1,"brokers":[{"id":1}],"topics":[]}', "missing field 'host'"),
    (b'{"version":1,"last_offset":1,"brokers":[],"topics":[{"name":"t","topic_id":"i",'
     b'"configs":{},"partitions":[{"replicas":[1],"target_replicas":"x","leader":1,'
     b'"leader_term":1,"config_offset":1}]}]}', "partition of topic 't'"),
])
def test_decode_snapshot_rejects_garbage(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_snapshot(data)


def test_decode_snapshot_rejects_duplicates() -> None:
    b = b'{"id":1,"host":"h","port":1,"rack":null,"draining":false}'
    data = b'{"version":1,"last_offset":1,"brokers":[' + b + b"," + b + b'],"topics":[]}'
    with pytest.raises(ValueError, match="broker 1 twice"):
        decode_snapshot(data)


def test_empty_image_round_trips() -> None:
    assert decode_snapshot(encode_snapshot(MetadataImage())) == MetadataImage()


def test_partition_leaders_records_each_later_election_with_one_command() -> None:
    image = build(RegisterBroker(1, "h", 1), CreateTopic("t", "id", ((1, 2, 3), (2, 3, 1))),
                  CreateTopic("u", "id-u", ((3, 1, 2),)), PartitionLeader("t", 1, 3, 4, "id"))
    image = apply(image, 10, PartitionLeaders(2, (
        LeaderReport("t", 0, 1, "id"), LeaderReport("t", 1, 3), LeaderReport("u", 0, 2))))
    t0, t1, u0 = (image.partition("t", 0), image.partition("t", 1), image.partition("u", 0))
    assert t0 is not None and (t0.leader, t0.leader_term) == (2, 1)
    assert t1 is not None and (t1.leader, t1.leader_term) == (3, 4)  # term 3 < 4: stale
    assert u0 is not None and (u0.leader, u0.leader_term) == (2, 2)
    assert image.last_offset == 10
