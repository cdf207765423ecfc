"""Hypothesis strategies for metadata commands (shared by the test_metadata_* modules)."""

from __future__ import annotations

from hypothesis import strategies as st

from odradek.broker.metadata.commands import (
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
)
from odradek.broker.metadata.security import (
    OPERATIONS,
    PATTERN_TYPES,
    PERMISSIONS,
    RESOURCE_TYPES,
    Acl,
    CreateAcls,
    DeleteAcls,
    DeleteUser,
    SecurityCommand,
    UpsertUser,
)

any_int = st.integers(min_value=-(2**63), max_value=2**63)
any_text = st.text(max_size=12)


def replica_lists(broker_ids: st.SearchStrategy[int], max_size: int = 4,
                  unique: bool = True) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(broker_ids, min_size=0 if not unique else 1, max_size=max_size,
                    unique=unique).map(tuple)


def commands(
    broker_ids: st.SearchStrategy[int] = any_int,
    names: st.SearchStrategy[str] = any_text,
    topic_ids: st.SearchStrategy[str] = any_text,
    partitions: st.SearchStrategy[int] = any_int,
    terms: st.SearchStrategy[int] = any_int,
    unique: bool = False,
) -> st.SearchStrategy[Command]:
    """Every command type. With small `broker_ids`/`names`, sequences collide meaningfully
    (a topic is created, reassigned, deleted, created again...)."""
    replicas = replica_lists(broker_ids, unique=unique)
    assignments = st.lists(replicas, min_size=0 if not unique else 1, max_size=4).map(tuple)
    configs = st.dictionaries(st.sampled_from(["retention.ms", "cleanup.policy", "x"]) | any_text,
                              any_text, max_size=3).map(lambda d: tuple(d.items()))
    opt_id = st.none() | topic_ids
    return st.one_of(
        st.builds(RegisterBroker, broker_ids, any_text, st.integers(0, 65535),
                  st.none() | st.sampled_from(["a", "b", "c"]) | any_text),
        st.builds(UnregisterBroker, broker_ids),
        st.builds(SetBrokerDraining, broker_ids, st.booleans()),
        st.builds(CreateTopic, names, topic_ids, assignments, configs),
        st.builds(DeleteTopic, names),
        st.builds(AlterTopicConfigs, names, configs),
        st.builds(AlterClusterConfigs, configs),
        st.builds(CreatePartitions, names, assignments),
        st.builds(ReassignPartition, names, partitions, replicas),
        st.builds(PartitionLeader, names, partitions, broker_ids, terms, opt_id),
        st.builds(PartitionReplicas, names, partitions, replicas, terms, opt_id),
        st.builds(PartitionsInSync, broker_ids, st.lists(st.builds(
            InSyncReport, names, partitions, terms, replicas, opt_id), max_size=3).map(tuple)),
        st.builds(PartitionLeaders, broker_ids, st.lists(st.builds(
            LeaderReport, names, partitions, terms, opt_id), max_size=3).map(tuple)),
        st.builds(AllocateProducerIds, broker_ids, st.integers(-1, 2000)),
        st.builds(InitNamedProducer, names, at_ms=st.integers(0, 2000)),
        st.builds(TouchNamedProducer, names, st.integers(0, 50), st.integers(0, 2000)),
        st.builds(ExpireNamedProducers, st.lists(names, max_size=3).map(tuple),
                  st.integers(0, 2000)),
        security_commands(names),
    )


def acls(names: st.SearchStrategy[str] = any_text) -> st.SearchStrategy[Acl]:
    """Bindings, most of them valid (the image skips the others)."""
    return st.builds(
        Acl, st.sampled_from(["User:alice", "User:bob", "User:*"]) | any_text,
        st.sampled_from(RESOURCE_TYPES), names | st.just("*"), st.sampled_from(PATTERN_TYPES),
        st.sampled_from(OPERATIONS), st.sampled_from(PERMISSIONS),
        st.sampled_from(["*", "127.0.0.1"]))


def security_commands(names: st.SearchStrategy[str] = any_text,
                      ) -> st.SearchStrategy[SecurityCommand]:
    users = st.sampled_from(["alice", "bob"]) | any_text
    key = st.binary(min_size=64, max_size=64)
    return st.one_of(
        st.builds(UpsertUser, users, st.just("SCRAM-SHA-512"), st.binary(min_size=16,
                  max_size=32), st.integers(4096, 10_000), key, key),
        st.builds(DeleteUser, users),
        st.builds(CreateAcls, st.lists(acls(names), max_size=3).map(tuple)),
        st.builds(DeleteAcls, st.lists(acls(names), max_size=3).map(tuple)),
    )


def small_commands() -> st.SearchStrategy[Command]:
    """Commands over a handful of brokers and topics, mostly well formed."""
    return commands(
        broker_ids=st.integers(0, 5),
        names=st.sampled_from(["orders", "users", "clicks"]),
        topic_ids=st.sampled_from(["id-1", "id-2", "id-3", "id-4"]),
        partitions=st.integers(0, 1),
        terms=st.integers(0, 6),
        unique=True,
    )
