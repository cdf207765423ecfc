"""The Kafka front end's pure parts: request and response framing through kio, building
any version of a response from one set of values, the error-code table, and the Kafka
port in the cluster metadata (old records and snapshots still read)."""

from __future__ import annotations

import io
import json
import struct

import pytest
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer

from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err
from odradek.broker.metadata.commands import RegisterBroker, decode_command
from odradek.broker.metadata.image import (
    MetadataImage,
    apply,
    decode_snapshot,
    encode_snapshot,
)
from odradek.broker.reasons import Reason


def request_frame(api_key: int, version: int, body: object, correlation_id: int = 9) -> bytes:
    cls = load_request_schema(api_key, version)
    head = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test"
    if cls.__flexible__:
        head += b"\0"
    out = io.BytesIO()
    entity_writer(cls)(out, body)
    return head + out.getvalue()


def test_a_flexible_request_decodes_with_its_header() -> None:
    cls = load_request_schema(18, 3)
    frame = request_frame(18, 3, cls(client_software_name="kcat",
                                     client_software_version="1.7"))
    request = codec.decode_request(frame)
    assert request.header == codec.Header(18, 3, 9, "test")
    assert request.body.client_software_name == "kcat"


def test_produce_records_stay_the_bytes_sent() -> None:
    module = codec.load_payload_module(0, 9, codec.EntityType.request)
    records = bytes(range(256)) * 4
    body = codec.make(module.ProduceRequest, acks=-1, timeout=1000, topic_data=(
        codec.nested(module, "TopicProduceData", name="t", partition_data=(
            codec.nested(module, "PartitionProduceData", index=2, records=records),)),))
    request = codec.decode_request(request_frame(0, 9, body))
    assert request.body.topic_data[0].partition_data[0].records == records
    assert codec.ms(request.body.timeout) == 1000


def test_a_version_not_served_has_no_body_and_a_cut_body_is_malformed() -> None:
    assert codec.decode_request(struct.pack(">hhih", 0, 2, 1, -1) + b"junk").body is None
    assert codec.decode_request(struct.pack(">hhih", 999, 0, 1, -1)).body is None
    cls = load_request_schema(18, 3)
    frame = request_frame(18, 3, cls(client_software_name="x", client_software_version="y"))
    with pytest.raises(codec.MalformedRequest):
        codec.decode_request(frame[:-3])
    with pytest.raises(codec.MalformedRequest):
        codec.decode_request(b"\x00\x03")


def test_every_served_version_has_kio_schemas() -> None:
    for api_key, (low, high) in codec.SUPPORTED.items():
        for version in range(low, high + 1):
            load_request_schema(api_key, version)
            codec.response_schema(api_key, version)


def test_responses_frame_with_the_header_their_version_needs() -> None:
    header = codec.Header(12, 4, 77, None)
    frame = codec.encode_response(header, codec.make(codec.response_schema(12, 4),
                                                     error_code=err.REBALANCE_IN_PROGRESS))
    length, correlation_id = struct.unpack_from(">ii", frame)
    assert length == len(frame) - 4 and correlation_id == 77
    assert frame[8] == 0  # response header v1: no tagged fields
    body, _ = entity_reader(codec.response_schema(12, 4))(frame, 9)
    assert body.error_code == ErrorCode.rebalance_in_progress
    # ApiVersions v3 answers with header v0: the body follows the correlation id.
    api = codec.encode_response(codec.Header(18, 3, 5, None),
                                codec.make(codec.response_schema(18, 3), error_code=0,
                                           api_keys=()))
    assert struct.unpack_from(">iih", api)[1:] == (5, 0)


def test_make_fills_each_version_from_one_set_of_values() -> None:
    values = dict(error_code=err.NONE, generation_id=3, protocol_type="consumer",
                  protocol_name="range", leader="a", member_id="b", members=())
    v0 = codec.make(codec.response_schema(11, 0), **values)
    v7 = codec.make(codec.response_schema(11, 7), **values)
    assert v0.generation_id == v7.generation_id == 3
    assert v7.throttle_time.total_seconds() == 0 and v7.protocol_type == "consumer"


def test_every_api_kio_knows_can_be_refused_in_its_own_schema() -> None:
    for api_key, name in api_key_map.items():
        for version in schema_name_map[name]:
            body = codec.error_response(api_key, version, err.UNSUPPORTED_VERSION)
            frame = codec.encode_response(codec.Header(api_key, version, 1, None), body)
            assert struct.unpack_from(">i", frame, 4) == (1,)


def test_every_reason_has_a_kafka_code() -> None:
    assert set(err.KAFKA_CODES) == set(Reason)
    known = {code.value for code in ErrorCode}
    assert all(code in known for code in err.KAFKA_CODES.values())
    assert err.kafka_code(Reason.NOT_LEADER) == 6
    assert err.kafka_code(Reason.UNKNOWN_TOPIC_OR_PARTITION) == 3
    assert err.kafka_code(Reason.TOPIC_AUTHORIZATION_FAILED) == 29


def test_unexpected_errors_are_unknown_server_error() -> None:
    assert err.error_of(RuntimeError("boom"), "test")[0] == err.UNKNOWN_SERVER_ERROR


def test_the_kafka_port_is_registered_and_old_records_still_read() -> None:
    old = json.dumps({"type": "register_broker", "broker_id": 1, "host": "h", "port": 9092,
                      "rack": None}).encode()
    assert decode_command(old) == RegisterBroker(1, "h", 9092, None, 0)
    new = RegisterBroker(1, "h", 9092, None, 19092)
    assert decode_command(new.encode()) == new
    assert b"kafka_port" not in RegisterBroker(1, "h", 9092).encode()
    image = apply(MetadataImage(), 1, new)
    assert image.brokers[1].kafka_port == 19092
    assert decode_snapshot(encode_snapshot(image)).brokers[1].kafka_port == 19092
    plain = apply(MetadataImage(), 1, RegisterBroker(1, "h", 9092))
    assert b"kafka_port" not in encode_snapshot(plain)  # what older brokers wrote and read
