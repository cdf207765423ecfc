"""An unknown user's SCRAM salt is the same on every broker and after a restart (real
processes), derived from the cluster secret in the metadata log: comparing brokers or
restarts does not tell which user names exist."""

from __future__ import annotations

from pathlib import Path

import grpc

from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess, ClusterProcesses, wait_until


def salt_for(broker: BrokerProcess, user: str) -> str | None:
    with broker.health_channel() as channel:
        try:
            reply = spb_grpc.SecurityStub(channel).ScramStart(  # type: ignore[no-untyped-call]
                spb.ScramStartRequest(mechanism="SCRAM-SHA-512",
                                      client_first_message=f"n,,n={user},r=abcdefgh"),
                timeout=5)
        except grpc.RpcError:
            return None
    fields = dict(part.split("=", 1) for part in reply.server_first_message.split(","))
    return fields["s"]


def test_decoy_salts_agree_across_brokers_and_restarts(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, 3).start()
    try:
        brokers = cluster.brokers

        def agreed() -> bool:
            salts = {salt_for(b, "nobody") for b in brokers}
            return len(salts) == 1 and None not in salts

        wait_until(agreed, 30, "the brokers to share the cluster secret")
        salt = salt_for(brokers[0], "nobody")
        assert salt_for(brokers[1], "somebody-else") != salt  # per name
        brokers[2].stop()
        brokers[2].start()
        assert salt_for(brokers[2], "nobody") == salt
    finally:
        cluster.stop()
