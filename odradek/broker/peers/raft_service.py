"""Registration of ``Raft.Exchange`` on a broker's gRPC server."""

from __future__ import annotations

import grpc

from odradek.broker.peers.raft_codec import serialize_envelope
from odradek.v1 import raft_pb2 as pb
from odradek.v1 import raft_pb2_grpc as pb_grpc

EXCHANGE = "/odradek.v1.Raft/Exchange"


def add_raft_service(servicer: pb_grpc.RaftServicer, server: grpc.aio.Server) -> None:
    """Serves ``Raft.Exchange`` on the server, writing the envelopes the transport framed
    itself (add_RaftServicer_to_server would serialize only RaftEnvelope messages)."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.Exchange, request_deserializer=pb.RaftEnvelope.FromString,
        response_serializer=serialize_envelope)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("odradek.v1.Raft", {"Exchange": handler}),))
