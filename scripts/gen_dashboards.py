"""Writes the Grafana dashboards in deploy/grafana/ (run `python scripts/gen_dashboards.py`
after changing a panel; the JSON files are committed, and a test checks they are current).

Every panel queries the Prometheus data source picked by the `datasource` variable and uses
only metrics the brokers export (tests/integration/test_dashboards.py checks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "grafana"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
INST = 'job="odradek", instance=~"$instance"'

Panel = dict[str, Any]


def _targets(exprs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)]


def timeseries(title: str, exprs: list[tuple[str, str]], unit: str = "short",
               description: str = "") -> Panel:
    return {"type": "timeseries", "title": title, "description": description, "datasource": DS,
            "targets": _targets(exprs),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, expr: str, unit: str = "short", red_above: float | None = None,
         description: str = "") -> Panel:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above})
    return {"type": "stat", "title": title, "description": description, "datasource": DS,
            "targets": _targets([(expr, "")]),
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute",
                                                                      "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "colorMode": "background", "graphMode": "area"}}


def table(title: str, expr: str, description: str = "") -> Panel:
    target = _targets([(expr, "")])[0]
    target.update({"format": "table", "instant": True})
    return {"type": "table", "title": title, "description": description, "datasource": DS,
            "targets": [target], "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True}}


def variable_datasource() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": []}


def variable_query(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [], "sort": 1, "hide": 0, "regex": ""}


def dashboard(uid: str, title: str, description: str, panels: list[Panel],
              variables: list[dict[str, Any]]) -> dict[str, Any]:
    laid_out = []
    x = y = 0
    row_height = 0
    for i, panel in enumerate(panels, start=1):
        width = 6 if panel["type"] == "stat" else 12
        height = 4 if panel["type"] == "stat" else 8
        if x + width > 24:
            x, y = 0, y + row_height
            row_height = 0
        laid_out.append({"id": i, "gridPos": {"x": x, "y": y, "w": width, "h": height},
                         **panel})
        x += width
        row_height = max(row_height, height)
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["odradek"], "timezone": "browser", "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [variable_datasource(), *variables]},
        "panels": laid_out,
    }


def instance_variable() -> dict[str, Any]:
    return variable_query("instance", "Broker",
                          'label_values(odradek_partitions{job="odradek"}, instance)')


def cluster_overview() -> dict[str, Any]:
    panels = [
        stat("Brokers up", f'sum(up{{{INST}}})', description="Brokers Prometheus can scrape"),
        stat("Under-replicated partitions",
             f"sum(odradek_partitions_under_replicated{{{INST}}})", red_above=1),
        stat("Partitions without leader",
             f"max(odradek_partitions_without_leader{{{INST}}})", red_above=1),
        stat("Partitions without quorum",
             f"sum(odradek_partitions_without_quorum{{{INST}}})", red_above=1),
        timeseries("Produce throughput",
                   [(f"sum by (instance) (rate(odradek_topic_bytes_in_total{{{INST}}}{RATE}))",
                     "{{instance}}")], "Bps"),
        timeseries("Consume throughput",
                   [(f"sum by (instance) (rate(odradek_topic_bytes_out_total{{{INST}}}{RATE}))",
                     "{{instance}}")], "Bps"),
        timeseries("Requests by method",
                   [(f"sum by (method) (rate(odradek_rpc_requests_total{{{INST}}}{RATE}))",
                     "{{method}}")], "reqps"),
        timeseries("Errors by method and reason",
                   [(f"sum by (method, code, reason) "
                     f"(rate(odradek_rpc_errors_total{{{INST}}}{RATE}))",
                     "{{method}} {{code}} {{reason}}")], "reqps"),
        timeseries("Request latency p99 by method",
                   [(f"histogram_quantile(0.99, sum by (le, method) "
                     f"(rate(odradek_rpc_duration_seconds_bucket{{{INST}}}{RATE})))",
                     "{{method}}")], "s"),
        timeseries("Log fsync latency",
                   [(f"histogram_quantile(0.99, sum by (le, instance) "
                     f"(rate(odradek_log_flush_duration_seconds_bucket{{{INST}}}{RATE})))",
                     "p99 {{instance}}"),
                    (f"histogram_quantile(0.5, sum by (le, instance) "
                     f"(rate(odradek_log_flush_duration_seconds_bucket{{{INST}}}{RATE})))",
                     "p50 {{instance}}")], "s"),
        timeseries("Partitions led and followed",
                   [(f"odradek_partitions_led{{{INST}}}", "led {{instance}}"),
                    (f"odradek_partitions_followed{{{INST}}}", "followed {{instance}}")]),
        timeseries("Data directory free space",
                   [(f"odradek_data_dir_free_bytes{{{INST}}} / "
                     f"odradek_data_dir_size_bytes{{{INST}}}", "{{instance}}")], "percentunit"),
        timeseries("Controller",
                   [(f"odradek_broker_is_controller{{{INST}}}", "{{instance}}")],
                   description="1 on the broker that is the metadata controller"),
        timeseries("Registered brokers",
                   [(f"max(odradek_cluster_brokers{{{INST}}})", "brokers")]),
        table("TLS certificates: days until expiry",
              f"min by (instance, role, subject) "
              f"(odradek_tls_certificate_expiry_timestamp_seconds{{{INST}}}) / 86400 "
              f"- time() / 86400",
              description="Certificates each broker presents (role=broker) or trusts "
                          "(role=ca); empty when TLS is off"),
        timeseries("CPU", [(f"rate(process_cpu_seconds_total{{{INST}}}{RATE})",
                            "{{instance}}")], "percentunit"),
        timeseries("Resident memory", [(f"process_resident_memory_bytes{{{INST}}}",
                                        "{{instance}}")], "bytes"),
        timeseries("Kafka requests by API",
                   [(f"sum by (api) (rate(odradek_kafka_requests_total{{{INST}}}{RATE}))",
                     "{{api}}")], "reqps",
                   "Requests the Kafka wire-protocol listener served, by Kafka API name."),
        timeseries("Kafka error codes by API",
                   [(f"sum by (api, error) (rate(odradek_kafka_errors_total{{{INST}}}{RATE}))",
                     "{{api}} {{error}}")], "reqps",
                   "Error codes the Kafka listener answered, each partition and group "
                   "counted: not_leader_or_follower while a leader moves, authorization "
                   "failures, unknown topics."),
    ]
    return dashboard("odradek-cluster-overview", "Odradek / Cluster overview",
                     "Brokers, partition health, traffic, latency and resources.", panels,
                     [instance_variable()])


def topics() -> dict[str, Any]:
    t = 'job="odradek", topic=~"$topic"'
    panels = [
        timeseries("Bytes in by topic",
                   [(f"sum by (topic) (rate(odradek_topic_bytes_in_total{{{t}}}{RATE}))",
                     "{{topic}}")], "Bps"),
        timeseries("Bytes out by topic",
                   [(f"sum by (topic) (rate(odradek_topic_bytes_out_total{{{t}}}{RATE}))",
                     "{{topic}}")], "Bps"),
        timeseries("Records in by topic",
                   [(f"sum by (topic) (rate(odradek_topic_records_in_total{{{t}}}{RATE}))",
                     "{{topic}}")], "ops"),
        timeseries("Records out by topic",
                   [(f"sum by (topic) (rate(odradek_topic_records_out_total{{{t}}}{RATE}))",
                     "{{topic}}")], "ops"),
        timeseries("Log size by topic (all replicas)",
                   [(f"sum by (topic) (odradek_log_size_bytes{{{t}}})", "{{topic}}")],
                   "bytes"),
        timeseries("Segments by topic (all replicas)",
                   [(f"sum by (topic) (odradek_log_segments{{{t}}})", "{{topic}}")]),
        timeseries("High watermark by partition",
                   [(f"max by (topic, partition) (odradek_partition_high_watermark{{{t}}})",
                     "{{topic}}-{{partition}}")]),
        timeseries("Log start offset by partition",
                   [(f"max by (topic, partition) (odradek_partition_log_start_offset{{{t}}})",
                     "{{topic}}-{{partition}}")]),
        timeseries("Retention: segments deleted",
                   [(f"sum by (topic) (increase(odradek_log_retention_deleted_segments_total"
                     f"{{{t}}}{RATE}))", "{{topic}}")]),
        timeseries("Compaction: bytes cleaned",
                   [(f"sum by (topic) (rate(odradek_log_compaction_cleaned_bytes_total"
                     f"{{{t}}}{RATE}))", "{{topic}}")], "Bps"),
        timeseries("Compaction runs",
                   [(f"sum by (topic) (increase(odradek_log_compaction_runs_total"
                     f"{{{t}}}{RATE}))", "{{topic}}")]),
    ]
    variable = variable_query("topic", "Topic",
                              'label_values(odradek_log_size_bytes{job="odradek"}, topic)')
    return dashboard("odradek-topics", "Odradek / Topics",
                     "Traffic, size and housekeeping per topic.", panels, [variable])


def replication() -> dict[str, Any]:
    panels = [
        stat("Under-replicated partitions",
             f"sum(odradek_partitions_under_replicated{{{INST}}})", red_above=1),
        stat("Partitions without quorum",
             f"sum(odradek_partitions_without_quorum{{{INST}}})", red_above=1),
        stat("Max follower commit lag",
             f"max(odradek_partition_follower_commit_lag{{{INST}}})"),
        stat("Elections (1h)", f"sum(increase(odradek_raft_elections_total{{{INST}}}[1h]))"),
        timeseries("Under-replicated partitions by leader",
                   [(f"odradek_partitions_under_replicated{{{INST}}}", "{{instance}}")]),
        timeseries("Partitions without leader, by replica's broker",
                   [(f"odradek_partitions_without_leader{{{INST}}}", "{{instance}}")]),
        timeseries("Follower commit lag",
                   [(f"max by (topic, partition, follower) "
                     f"(odradek_partition_follower_commit_lag{{{INST}}})",
                     "{{topic}}-{{partition}} -> {{follower}}")],
                   description="Leader's commit index minus the follower's match index"),
        timeseries("In-sync replicas vs replicas",
                   [(f"min by (topic, partition) (odradek_partition_in_sync_replicas{{{INST}}})"
                     f" / on (topic, partition) group_left max by (topic, partition) "
                     f"(odradek_partition_replicas{{{INST}}})", "{{topic}}-{{partition}}")],
                   "percentunit"),
        timeseries("Leaders per broker",
                   [(f"sum by (instance) (odradek_partition_leader{{{INST}}})",
                     "{{instance}}")]),
        timeseries("Elections",
                   [(f"sum by (instance) (rate(odradek_raft_elections_total{{{INST}}}{RATE}))",
                     "started {{instance}}"),
                    (f"sum by (instance) "
                     f"(rate(odradek_raft_elections_won_total{{{INST}}}{RATE}))",
                     "won {{instance}}")], "ops"),
        timeseries("Raft term by partition",
                   [(f"max by (topic, partition) (odradek_partition_raft_term{{{INST}}})",
                     "{{topic}}-{{partition}}")]),
        timeseries("Raft streams to peers",
                   [(f"odradek_raft_peer_connected{{{INST}}}", "{{instance}} -> {{peer}}")],
                   description="1 while the Raft stream to the peer broker is up"),
        timeseries("Raft messages dropped",
                   [(f"sum by (instance, peer) "
                     f"(rate(odradek_raft_peer_dropped_messages_total{{{INST}}}{RATE}))",
                     "{{instance}} -> {{peer}}")], "ops"),
        table("Partitions under replicated now",
              f"max by (topic, partition, instance) "
              f"(odradek_partition_under_replicated{{{INST}}})",
              description="1: the leader (instance) misses a voter"),
    ]
    return dashboard("odradek-replication", "Odradek / Replication",
                     "Raft health: in-sync replicas, follower lag, leaders and elections.",
                     panels, [instance_variable()])


def consumer_groups() -> dict[str, Any]:
    g = 'job="odradek", group=~"$group"'
    panels = [
        stat("Consumer groups", f"count(max by (group) (odradek_consumer_group_members{{{g}}}))",
             description="Groups with members or committed offsets"),
        stat("Members", f"sum(max by (group) (odradek_consumer_group_members{{{g}}}))"),
        stat("Total lag", f"sum(max by (group, topic, partition) "
                          f"(odradek_consumer_group_lag{{{g}}}))",
             description="Records after the committed offsets, over every group and partition"),
        timeseries("Lag by group and topic",
                   [(f"sum by (group, topic) (max by (group, topic, partition) "
                     f"(odradek_consumer_group_lag{{{g}}}))", "{{group}} / {{topic}}")],
                   description="Log end offset minus committed offset, summed over partitions"),
        timeseries("Lag change by group and topic",
                   [(f"sum by (group, topic) "
                     f"(deriv(odradek_consumer_group_lag{{{g}}}[5m]))", "{{group}} / {{topic}}")],
                   "ops", description="Records per second the lag grows (positive: the "
                   "group falls behind; the alert fires after 15 minutes of growth)"),
        timeseries("Commit progress by group and topic",
                   [(f"sum by (group, topic) "
                     f"(deriv(odradek_consumer_group_committed_offset{{{g}}}[5m]))",
                     "{{group}} / {{topic}}")], "ops",
                   description="Records per second the committed offsets advance"),
        timeseries("Members by group",
                   [(f"max by (group) (odradek_consumer_group_members{{{g}}})", "{{group}}")]),
        table("Lag by partition now",
              f"sort_desc(max by (group, topic, partition) (odradek_consumer_group_lag{{{g}}}))",
              description="Exported by the group's coordinator (the leader of its "
                          "__consumer_offsets partition)"),
    ]
    variable = variable_query("group", "Group",
                              'label_values(odradek_consumer_group_members{job="odradek"}, '
                              'group)')
    return dashboard("odradek-consumer-groups", "Odradek / Consumer groups",
                     "Members, committed offsets and lag of consumer groups.", panels,
                     [variable])


DASHBOARDS = {"cluster-overview.json": cluster_overview, "topics.json": topics,
              "replication.json": replication, "consumer-groups.json": consumer_groups}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
