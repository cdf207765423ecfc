"""`odradek produce` and `odradek consume` as kcat and the kafka-console tools are used:
keys, partitions, headers, timestamps, files, JSON lines, format strings; through the real
command against a real broker."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.brokers import BrokerProcess
from tests.cli import odradek


def ok(*args: str, stdin: str | None = None) -> str:
    r = odradek(*args, stdin=stdin)
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def read_json(boot: list[str], topic: str, *extra: str) -> list[dict[str, Any]]:
    out = ok("consume", topic, "-o", "beginning", "-e", "--format", "json", *extra, *boot)
    return [json.loads(line) for line in out.splitlines()]


def test_produce_options_and_consume_formats(broker: BrokerProcess, tmp_path: Path) -> None:
    boot = ["--bootstrap", broker.address]
    ok("topic", "create", "orders", "--partitions", "2", *boot)
    # A fixed key, a partition, repeated headers, from stdin.
    ok("produce", "orders", "--key", "k", "--partition", "1", "--header", "a=1",
       "--header", "b=2", *boot, stdin="v1\nv2\n")
    # JSON lines from a file: the shape `consume --format json` prints.
    lines = tmp_path / "records.jsonl"
    blob = bytes(range(250, 256))
    lines.write_text("\n".join([
        json.dumps({"key": "j", "value": "x", "headers": {"h": "y"}, "partition": 0,
                    "timestamp": 1_700_000_000_000}),
        "",
        json.dumps({"value": {"n": 1}, "partition": 0, "headers": [{"key": "e"}]}),
        json.dumps({"key": None, "value": base64.b64encode(blob).decode(),
                    "value_encoding": "base64", "partition": 0}),
    ]) + "\n")
    ok("produce", "orders", "--file", str(lines), "--format", "json", "--acks", "leader",
       *boot)
    ok("produce", "orders", "-p", "0", "--acks", "1", *boot, stdin="last\n")

    one = read_json(boot, "orders", "--partition", "1")
    assert [(r["partition"], r["key"], r["value"], r["headers"]) for r in one] == [
        (1, "k", v, [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        for v in ("v1", "v2")]
    zero = read_json(boot, "orders", "-p", "0")
    assert [(r["key"], r["value"], r.get("value_encoding")) for r in zero] == [
        ("j", "x", None), (None, '{"n":1}', None),
        (None, base64.b64encode(blob).decode(), "base64"), (None, "last", None)]
    # Numbers are JSON numbers.
    assert all(isinstance(r[f], int) for r in zero + one for f in ("partition", "offset",
                                                                    "timestamp"))
    assert zero[0]["timestamp"] == 1_700_000_000_000
    assert zero[1]["headers"] == [{"key": "e", "value": None}]

    # kcat -f: every token, against what the JSON says.
    first = zero[0]
    formatted = ok("consume", "orders", "-p", "0", "-o", "beginning", "--count", "1",
                   "-f", "%t|%p|%o|%k|%s|%h|%T|%S|%K|100%%\\n", *boot)
    assert formatted == (f"orders|0|{first['offset']}|j|x|h=y|1700000000000|1|1|100%\n")
    # Headers and timestamps in text output, as kafka-console-consumer.sh prints them.
    text = ok("consume", "orders", "-p", "1", "-o", "beginning", "-e", "--print-key",
              "--print-timestamp", "--print-headers", *boot)
    assert text.splitlines() == [f"CreateTime:{r['timestamp']}\ta:1,b:2\tk\t{r['value']}"
                                 for r in one]
    bare = ok("consume", "orders", "-p", "0", "-o", "beginning", "--count", "2",
              "--print-headers", *boot)
    assert bare.splitlines() == ["h:y\tx", "e:\t{\"n\":1}"]

    past = odradek("consume", "orders", "-p", "1", "-o", "1000", "-e", *boot)
    assert (past.returncode, past.stdout, past.stderr) == (
        0, "", f"note: orders-1 ends at offset {one[-1]['offset'] + 1}; waiting for offset "
               "1000\n")
    bad = odradek("consume", "orders", "-f", "%t %x", *boot)
    assert (bad.returncode, bad.stderr) == (
        1, "error: --format-string: unknown token '%x' in the format string (known: %t %p "
           "%o %k %s %h %T %S %K %%)\n")
    wrong = odradek("consume", "orders", "--partition", "2", *boot)
    assert (wrong.returncode, wrong.stderr) == (
        1, "error: topic orders has no partition 2 (it has 2) (UNKNOWN_TOPIC_OR_PARTITION)\n")


def test_consume_json_output_is_produce_json_input(broker: BrokerProcess) -> None:
    boot = ["--bootstrap", broker.address]
    ok("topic", "create", "src", *boot)
    ok("topic", "create", "copy", *boot)
    ok("produce", "src", "--key-separator", ":", "--header", "trace=t1", *boot,
       stdin="a:1\nb:2\n")
    dumped = ok("consume", "src", "-o", "beginning", "-e", "--format", "json", *boot)
    # Topic and offset in the lines are left out; partition 0 and the timestamps are kept.
    ok("produce", "copy", "--format", "json", *boot, stdin=dumped)
    fields = ("key", "value", "headers", "timestamp")
    assert [{f: r[f] for f in fields} for r in read_json(boot, "copy")] == [
        {f: r[f] for f in fields} for r in map(json.loads, dumped.splitlines())]
    bad = odradek("produce", "copy", "--format", "json", *boot, stdin='{"value": "ok"}\n[1]\n')
    assert (bad.returncode, bad.stderr) == (
        1, "error: line 2: expected a JSON object with a value, got list\n")
    missing = odradek("produce", "copy", "--file", "/nonexistent/records", *boot)
    assert (missing.returncode, missing.stderr) == (
        1, "error: cannot read --file: [Errno 2] No such file or directory: "
           "'/nonexistent/records'\n")
