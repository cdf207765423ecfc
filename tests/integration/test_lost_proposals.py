"""A metadata proposal lost in a controller change is never taken for applied (real
processes): the controller appends a producer id allocation that its killed followers never
see, is paused while they restart and elect a new controller that writes other commands at
and after that offset, and is then resumed. Before the fix, the broker took "its offset was
applied" for "it was applied" and handed out its previous block of ids a second time."""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from odradek.v1 import odradek_pb2 as pb
from tests.brokers import BrokerProcess, ClusterProcesses, paused_safely, wait_until

BLOCK = 1000  # odradek.broker.producers.manager.BLOCK_SIZE


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[ClusterProcesses]:
    with paused_safely(ClusterProcesses(tmp_path, 3).start()) as cluster:
        yield cluster



def controller_seen_by(broker: BrokerProcess) -> int:
    with broker.health_channel() as channel:
        broker_stub, _ = broker.stubs(channel)
        try:
            reply = broker_stub.Metadata(pb.MetadataRequest(), timeout=2)
        except grpc.RpcError:
            return -1
    return int(reply.controller_id)


def meta_log_bytes(broker: BrokerProcess) -> int:
    return sum(f.stat().st_size for f in (broker.data_dir / "__meta").glob("*.log"))


def test_a_lost_allocation_never_hands_out_ids_twice(cluster3: ClusterProcesses) -> None:
    brokers = cluster3.brokers
    wait_until(lambda: controller_seen_by(brokers[0]) >= 0, 30, "a controller")
    controller = brokers[controller_seen_by(brokers[0])]
    followers = [b for b in brokers if b is not controller]
    with controller.health_channel() as channel:
        stub, admin = controller.stubs(channel)
        handed = [stub.InitProducerId(pb.InitProducerIdRequest(), timeout=20).producer_id
                  for _ in range(BLOCK)]  # the controller's first block, used up
        assert len(set(handed)) == BLOCK
        # Killed, not paused: a paused follower would still find the allocation in its
        # socket buffer when it resumes, and the new controller would commit it.
        for follower in followers:
            follower.kill9()
        before = meta_log_bytes(controller)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # Needs a new block: the allocation is appended on the controller alone.
            pending = pool.submit(lambda: stub.InitProducerId(
                pb.InitProducerIdRequest(), timeout=60).producer_id)
            wait_until(lambda: meta_log_bytes(controller) > before, 10,
                       "the allocation in the controller's log")
            controller.signal(signal.SIGSTOP)
            for follower in followers:
                follower.start(wait=False)
            follower_ids = {brokers.index(b) for b in followers}
            wait_until(lambda: controller_seen_by(followers[0]) in follower_ids, 30,
                       "a new controller")
            with followers[0].health_channel() as other:
                _, other_admin = followers[0].stubs(other)
                # A command after the new controller's no-op, over the lost offset's range.
                other_admin.CreateTopic(pb.CreateTopicRequest(
                    name="after-the-change", partitions=1, replication_factor=2), timeout=20)
            controller.signal(signal.SIGCONT)
            fresh = pending.result(timeout=60)
    assert fresh not in handed, (
        f"producer id {fresh} was handed out twice: the lost allocation was taken for "
        "applied and the previous block used again")
