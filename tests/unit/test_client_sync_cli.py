"""Sync wrappers, admin calls and the CLI, against a fake broker on its own thread."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from odradek.cli.main import build_parser, main
from odradek.client import (
    InvalidConfigError,
    SyncAdmin,
    SyncConsumer,
    SyncProducer,
    TopicAlreadyExistsError,
)
from odradek.records import iter_batches
from tests.unit.fake_odradek import ThreadedFake


@pytest.fixture()
def fake() -> Iterator[ThreadedFake]:
    f = ThreadedFake()
    try:
        yield f
    finally:
        f.stop()


def test_sync_admin(fake: ThreadedFake) -> None:
    with SyncAdmin(fake.cluster.bootstrap) as admin:
        desc = admin.create_topic("t", 3, configs={"retention.ms": "1000"})
        assert desc.name == "t" and len(desc.partitions) == 3
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topic("t")
        admin.create_topic("v", validate_only=True)
        assert [t.name for t in admin.list_topics()] == ["t"]
        configs = {c.name: c.value for c in admin.describe_topic("t").configs}
        assert configs["retention.ms"] == "1000"
        desc = admin.alter_configs("t", set={"cleanup.policy": "compact"}, delete=["retention.ms"])
        assert [c.name for c in desc.configs if not c.is_default] == ["cleanup.policy"]
        with pytest.raises(InvalidConfigError):
            admin.alter_configs("t", set={"bogus.x": "1"})
        assert len(admin.create_partitions("t", 5).partitions) == 5
        md = admin.metadata()
        assert [t.name for t in md.topics] == ["t"] and len(md.topics[0].partitions) == 5
        assert admin.list_offsets("t", 0, "latest").offset == 0
        admin.delete_topic("t")
        assert admin.list_topics() == []


def test_sync_producer_and_consumer(fake: ThreadedFake) -> None:
    fake.call(lambda: fake.cluster.create_topic("t", 2))
    with SyncProducer(fake.cluster.bootstrap, linger_ms=1) as producer:
        metas = [producer.send("t", f"v{i}", key=f"k{i}") for i in range(10)]
        producer.flush()
        results = [m.result(5) for m in metas]
        assert sorted((m.partition, m.offset) for m in results) == sorted(
            (m.partition, m.offset) for m in results)
        assert producer.send_and_wait("t", b"last", partition=1).partition == 1
    with SyncConsumer(fake.cluster.bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign(consumer.partitions_for("t"))
        got = []
        for _ in range(20):
            got += consumer.poll(200)
            if len(got) >= 11:
                break
        assert sorted(r.value for r in got) == sorted([b"v%d" % i for i in range(10)] + [b"last"])
        consumer.seek(("t", 1), 0)
        assert consumer.position(("t", 1)) == 0
        consumer.seek_to_end()
        assert consumer.poll(50) == []


def test_parser_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODRADEK_BOOTSTRAP", "h:1")
    monkeypatch.setenv("ODRADEK_PORT", "7777")
    monkeypatch.setenv("ODRADEK_DATA_DIR", "/data")
    p = build_parser()
    a = p.parse_args(["topic", "create", "x", "--partitions", "3", "-r", "2",
                      "--config", "a=1", "--config", "b=c=d"])
    assert (a.name, a.partitions, a.replication_factor, a.config, a.bootstrap) == (
        "x", 3, 2, {"a": "1", "b": "c=d"}, "h:1")
    a = p.parse_args(["broker", "--config", "retention.ms=5", "--log-level", "debug"])
    assert (a.port, a.host, a.data_dir, a.broker_id, a.config, a.log_level) == (
        7777, "127.0.0.1", "/data", 0, ["retention.ms=5"], "DEBUG")
    with pytest.raises(SystemExit):
        p.parse_args(["broker", "--config", "novalue"])
    a = p.parse_args(["dev"])
    assert a.port == 7777 and a.data_dir == "/data"
    a = p.parse_args(["consume", "t", "--from-timestamp", "2024-01-01T00:00:00Z"])
    assert a.from_timestamp == 1704067200000
    a = p.parse_args(["consume", "t", "--from-timestamp", "2024-01-01T01:00:00+01:00"])
    assert a.from_timestamp == 1704067200000
    a = p.parse_args(["bench", "produce", "--records", "10", "--record-size", "5"])
    assert (a.records, a.record_size, a.acks, a.no_idempotence) == (10, 5, "quorum", False)
    assert p.parse_args(["produce", "t", "--no-idempotence"]).no_idempotence
    a = p.parse_args(["broker", "--producer-id-expiration-ms", "60000"])
    assert a.producer_id_expiration_ms == 60000
    with pytest.raises(SystemExit):
        p.parse_args(["broker", "--producer-id-expiration-ms", "-1"])
    with pytest.raises(SystemExit):
        p.parse_args(["consume", "t", "--from-beginning", "--offset", "3"])
    with pytest.raises(SystemExit):
        p.parse_args(["topic", "create", "x", "--config", "novalue"])


def test_broker_without_data_dir_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODRADEK_DATA_DIR", raising=False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["broker"])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_topics_produce_consume(
    fake: ThreadedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = ["--bootstrap", fake.cluster.bootstrap]
    code, out, _ = run(capsys, "topic", "create", "t", "--partitions", "2", *b, "-c", "x.y=1")
    assert code == 0 and "created topic t" in out
    code, _, err = run(capsys, "topic", "create", "t", *b)
    assert code == 1 and err.strip() == "error: topic 't' already exists (TOPIC_ALREADY_EXISTS)"
    assert run(capsys, "topic", "create", "t", "--if-not-exists", *b)[0] == 0
    code, out, _ = run(capsys, "topic", "list", *b)
    assert "t" in out.splitlines()[1]
    code, out, _ = run(capsys, "topic", "describe", "t", *b)
    assert "Partitions: 2" in out and "x.y=1" in out
    code, out, _ = run(capsys, "topic", "describe", "t", "--json", *b)
    assert json.loads(out)["name"] == "t"
    code, out, _ = run(capsys, "topic", "alter", "t", "--delete-config", "x.y", "--partitions",
                       "3", *b)
    assert code == 0 and "Partitions: 3" in out
    code, _, err = run(capsys, "topic", "alter", "t", "-c", "bogus=1", *b)
    assert code == 1 and "(INVALID_CONFIG)" in err

    data = b"k1:hello\nk2:w\xc3\xb6rld\n\xff:\xfe\x01\nk1:again"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, _, err = run(capsys, "produce", "t", "--key-separator", ":", "--partition", "1", *b)
    assert code == 0, err

    code, out, _ = run(capsys, "consume", "t", "--from-beginning", "--partition", "1",
                       "--max-messages", "2", "--print-key", "--key-separator", "=", *b)
    assert code == 0
    assert out == "k1=hello\nk2=wörld\n"
    code, out, _ = run(capsys, "consume", "t", "--from-beginning", "--timeout-ms", "300",
                       "--format", "json", *b)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["offset"] for x in lines] == [0, 1, 2, 3]
    assert lines[0]["key"] == "k1" and lines[0]["value"] == "hello"
    assert lines[2]["key"] == "/w==" and lines[2]["key_encoding"] == "base64"
    assert lines[2]["value"] == "/gE=" and lines[2]["value_encoding"] == "base64"
    assert lines[3]["value"] == "again" and lines[3]["partition"] == 1

    code, out, _ = run(capsys, "consume", "t", "--offset", "3", "-p", "1", "--timeout-ms",
                       "200", *b)
    assert out == "again\n"
    code, out, _ = run(capsys, "consume", "t", "--from-end", "--timeout-ms", "100", *b)
    assert code == 0 and out == ""
    code, out, _ = run(capsys, "consume", "t", "--from-timestamp", "0", "-n", "1", *b)
    assert out == "hello\n"

    code, _, err = run(capsys, "consume", "missing", "--timeout-ms", "100", *b)
    assert code == 1 and "(UNKNOWN_TOPIC_OR_PARTITION)" in err and "Traceback" not in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"x\n")))
    code, _, err = run(capsys, "produce", "missing", *b)
    assert code == 1 and "(UNKNOWN_TOPIC_OR_PARTITION)" in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"nosep\n")))
    code, _, err = run(capsys, "produce", "t", "--key-separator", ":", *b)
    assert code == 1 and "no key separator" in err
    code, out, _ = run(capsys, "topic", "delete", "t", *b)
    assert code == 0 and "deleted" in out


def test_cli_unreachable_broker(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "topic", "list", "--bootstrap", "127.0.0.1:1")
    assert code == 1 and err.startswith("error: ") and "(UNAVAILABLE)" in err


def test_cli_bench(fake: ThreadedFake, capsys: pytest.CaptureFixture[str]) -> None:
    b = ["--bootstrap", fake.cluster.bootstrap]
    code, out, err = run(capsys, "bench", "produce", "--topic", "bt", "--records", "2000",
                         "--record-size", "100", "--partitions", "2", "--json", *b)
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["records"] == 2000 and result["mb_per_s"] > 0
    assert result["latency_ms"]["p99"] >= result["latency_ms"]["p50"] > 0
    # Not a terminal: no progress bar (test_cli_first_hour.py draws one on a pty).
    assert "produce [" not in err
    pids = {h.producer_id for r in fake.cluster.produce_requests() for _, h in iter_batches(
        r.records)}
    assert len(pids) == 1 and min(pids) >= 0  # idempotent by default: one producer id
    code, out, err = run(capsys, "bench", "produce", "--topic", "bt", "--records", "10",
                         "--record-size", "100", "--no-idempotence", "--no-progress", *b)
    assert code == 0, err
    last = fake.cluster.produce_requests()[-1]
    assert {h.producer_id for _, h in iter_batches(last.records)} == {-1}
    code, out, err = run(capsys, "bench", "consume", "--topic", "bt", "--json", "--no-progress",
                         *b)
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["records"] == 2010 and result["bytes"] == 201_000


def test_broker_command_calls_into_broker_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object,
) -> None:
    import sys
    import types

    calls = []
    main_mod = types.ModuleType("odradek.cli.broker_run")
    main_mod.run_broker = lambda args: calls.append(("broker", args.port, args.data_dir))  # type: ignore[attr-defined]
    dev_mod = types.ModuleType("odradek.cli.dev_cluster")
    dev_mod.run_dev = lambda args: calls.append(("dev", args.port, args.data_dir)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "odradek.broker", types.ModuleType("odradek.broker"))
    monkeypatch.setitem(sys.modules, "odradek.cli.broker_run", main_mod)
    monkeypatch.setitem(sys.modules, "odradek.cli.dev_cluster", dev_mod)
    assert main(["broker", "--port", "1234", "--data-dir", str(tmp_path)]) == 0
    assert main(["dev"]) == 0
    assert calls == [("broker", 1234, str(tmp_path)), ("dev", 9092, "./.dev-data")]
