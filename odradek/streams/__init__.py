"""Stream processing on Odradek: streams, tables, state stores, joins and windows.

    app = App("127.0.0.1:9092", "wordcount")
    (app.stream("lines", STR, STR)
        .flat_map(lambda _k, line: [(w, w) for w in line.split()], key_serde=STR)
        .group_by_key().count("counts").to("word-counts", STR, JSON))
    async with app:
        ...  # app.store("counts").get("word")

Imports only odradek.client, odradek.records, the generated odradek.v1 code of its query
service and its own dependencies (lmdb, grpc)."""

from odradek.streams.app import App, NotLocalError, StoreView
from odradek.streams.registry import InstanceInfo
from odradek.streams.runtime import RestoreProgress, TaskMetrics
from odradek.streams.serdes import (
    BYTES,
    INT,
    JSON,
    STR,
    BytesSerde,
    IntSerde,
    JsonSerde,
    ProtobufSerde,
    Serde,
    StrSerde,
    Windowed,
    WindowedSerde,
)
from odradek.streams.service import ensure_topics, serve, service_parser, stop_on_signals
from odradek.streams.testing import Driver
from odradek.streams.topology import (
    GlobalTable,
    GroupedStream,
    Stream,
    Table,
    Topology,
    TopologyError,
)
from odradek.streams.windows import HoppingWindows, JoinWindows, SessionWindows, TumblingWindows

__all__ = [
    "App", "BYTES", "BytesSerde", "Driver", "GlobalTable", "GroupedStream", "HoppingWindows",
    "INT", "JoinWindows", "SessionWindows", "IntSerde", "JSON",
    "JsonSerde", "NotLocalError", "ProtobufSerde", "STR", "Serde", "StoreView", "Stream",
    "StrSerde", "Table",
    "Topology", "TopologyError", "TumblingWindows", "Windowed", "WindowedSerde",
    "InstanceInfo", "RestoreProgress", "TaskMetrics", "ensure_topics", "serve",
    "service_parser", "stop_on_signals",
]
