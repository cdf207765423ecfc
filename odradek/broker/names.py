"""Topic name rules, as Kafka's: so names that work there work here and vice versa; and
the name of a partition's Raft group."""

from __future__ import annotations

import re

from odradek.broker.errors import BrokerError, Reason

MAX_TOPIC_NAME = 249
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")


def check_topic_name(name: str) -> None:
    problem = None
    if not name:
        problem = "it is empty"
    elif name in (".", ".."):
        problem = "'.' and '..' are reserved"
    elif len(name) > MAX_TOPIC_NAME:
        problem = f"it is {len(name)} characters long, over the limit of {MAX_TOPIC_NAME}"
    elif not _LEGAL.match(name):
        problem = "only ASCII letters, digits, '.', '_' and '-' are allowed"
    if problem:
        raise BrokerError(Reason.INVALID_TOPIC,
            f"invalid topic name {name!r}: {problem}", {"topic": name})


def is_internal(topic: str) -> bool:
    """Topics the brokers keep for themselves (__consumer_offsets and any "__" name)."""
    return topic.startswith("__")


def refuse_internal(topic: str, what: str) -> None:
    """Clients may read internal topics (with ACLs) but never write, delete or change
    them, whatever their ACLs: only the brokers write them."""
    if is_internal(topic):
        raise BrokerError(Reason.INVALID_TOPIC,
                          f"topic {topic!r} is internal: clients may not {what} it (only "
                          "the brokers write it)", {"topic": topic})


def partition_group(topic: str, partition: int) -> str:
    """The name of a partition's Raft group on the RaftHost and in the transport."""
    return f"{topic}-{partition}"
