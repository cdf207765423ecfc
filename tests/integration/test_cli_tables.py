"""Every table `odradek` prints has a --json twin; topic describe takes several topics or
none (all). Through the real command against a real broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.brokers import BrokerProcess
from tests.cli import odradek


def ok(*args: str) -> str:
    r = odradek(*args)
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def test_describe_several_or_all_topics(broker: BrokerProcess) -> None:
    boot = ["--bootstrap", broker.address]
    for name, partitions in (("beta", "2"), ("alpha", "1")):
        ok("topic", "create", name, "--partitions", partitions, *boot)
    both = ok("topic", "describe", "beta", "alpha", *boot)
    heads = [line.split("\t") for line in both.splitlines() if line.startswith("Topic: ")]
    assert [(h[0], h[2]) for h in heads] == [("Topic: beta", "Partitions: 2"),
                                             ("Topic: alpha", "Partitions: 1")]
    assert both.count("\n\n") == 1  # a blank line between the topics
    every = ok("topic", "describe", *boot)
    assert [line.split("\t")[0] for line in every.splitlines()
            if line.startswith("Topic: ")] == ["Topic: alpha", "Topic: beta"]
    assert "__consumer_offsets" not in every
    assert [d["name"] for d in as_json("topic", "describe", *boot)] == ["alpha", "beta"]
    assert [d["name"] for d in as_json("topic", "describe", "beta", "alpha", *boot)] == [
        "beta", "alpha"]
    one = as_json("topic", "describe", "alpha", *boot)
    assert (one["name"], [p["info"]["partition"] for p in one["partitions"]]) == ("alpha", [0])
    missing = odradek("topic", "describe", "alpha", "ghost", *boot)
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1, "", "error: topic 'ghost' does not exist (UNKNOWN_TOPIC_OR_PARTITION)\n")
    altered = as_json("topic", "alter", "alpha", "--config", "retention.ms=60000", *boot)
    assert {c["name"]: c["value"] for c in altered["configs"]
            if not c["is_default"]} == {"retention.ms": "60000"}


def test_json_twins_of_the_cluster_user_and_acl_tables(broker: BrokerProcess,
                                                      tmp_path: Path) -> None:
    boot = ["--bootstrap", broker.address]
    cluster = as_json("cluster", "describe", *boot)
    assert cluster["controller_id"] == 0
    assert [(b["id"], b["port"]) for b in cluster["brokers"]] == [(0, broker.port)]
    password = tmp_path / "pw"
    password.write_text("s3cret-enough\n")
    ok("user", "create", "alice", "--new-password-file", str(password), "--iterations",
       "4096", *boot)
    assert as_json("user", "list", *boot) == [
        {"name": "alice", "mechanism": "SCRAM-SHA-512", "iterations": 4096}]
    ok("acl", "add", "--allow-principal", "User:alice", "--operation", "read", "--topic",
       "orders", *boot)
    assert as_json("acl", "list", *boot) == [
        {"principal": "User:alice", "permission": "allow", "operation": "read",
         "resource_type": "topic", "resource_name": "orders", "pattern_type": "literal",
         "host": "*"}]
