"""Prometheus gauges of the groups this broker coordinates, read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from odradek.broker.groups.coordinator import GroupCoordinator


class GroupCollector(Collector):
    """Lag = the partition's last known log end offset - the committed offset (the end
    offsets are refreshed every 10 s and by each describe)."""

    def __init__(self, coordinator: Callable[[], GroupCoordinator | None]) -> None:
        self._coordinator = coordinator

    def collect(self) -> Iterable[Metric]:
        coordinator = self._coordinator()
        if coordinator is None:
            return
        labels = ["group", "topic", "partition"]
        members = GaugeMetricFamily("odradek_consumer_group_members",
                                    "Members of the consumer group (on its coordinator)",
                                    labels=["group"])
        committed = GaugeMetricFamily("odradek_consumer_group_committed_offset",
                                      "Committed offset of the group for the partition",
                                      labels=labels)
        lag = GaugeMetricFamily("odradek_consumer_group_lag",
                                "Records of the partition after the group's committed offset",
                                labels=labels)
        ends = coordinator.lookup.end_offsets
        for group in sorted(coordinator.groups(), key=lambda g: g.group_id):
            members.add_metric([group.group_id], len(group.members))
            for (topic, partition), value in sorted(group.offsets.items()):
                label = [group.group_id, topic, str(partition)]
                committed.add_metric(label, value.offset)
                end = ends.get((topic, partition))
                if end is not None:
                    lag.add_metric(label, max(0, end - value.offset))
        yield members
        yield committed
        yield lag
