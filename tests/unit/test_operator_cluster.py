"""Cluster rendering: the objects are valid Kubernetes objects, owned by the Cluster, and
carry what `odradek broker` needs (broker id from the ordinal, voters, one PVC each)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from odradek.cli.main import build_parser
from odradek.operator import cluster as cl

OWNER = {"apiVersion": "odradek.io/v1alpha1", "kind": "Cluster",
         "metadata": {"name": "events", "uid": "uid-1"}}
SPEC = {"brokers": 3, "image": "odradek:1", "storage": {"size": "20Gi",
                                                       "storageClassName": "fast"},
        "resources": {"requests": {"cpu": "500m"}}, "config": {"retention.ms": 1000},
        "rack": {"topologyKey": "topology.kubernetes.io/zone"}}


def objects(spec: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    c = cl.desired(spec or SPEC, "events", "prod")
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in cl.render(c, OWNER)}


def test_renders_every_part_owned_by_the_cluster() -> None:
    rendered = objects()
    assert set(rendered) == {"ConfigMap/events-config", "Service/events-brokers",
                             "Service/events-bootstrap", "PodDisruptionBudget/events",
                             "StatefulSet/events"}
    for obj in rendered.values():
        [ref] = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == "uid-1" and ref["controller"] is True


@pytest.mark.parametrize("key", sorted(objects()))
def test_rendered_objects_are_valid(key: str) -> None:
    kubernetes_validate.validate(objects()[key], kubernetes_validate.latest_version(),
                                 strict=True)


def test_stateful_set_runs_brokers_by_ordinal() -> None:
    sts = objects()["StatefulSet/events"]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "events-brokers"
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    pod = sts["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") or e["valueFrom"]["fieldRef"]["fieldPath"]
           for e in container["env"]}
    assert env["ODRADEK_BROKER_ID"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert env["ODRADEK_ADVERTISED_HOST"] == "$(POD_NAME).events-brokers.prod.svc"
    # The operator rolls the pods itself (cluster.roll_plan).
    assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    # The args parse as `odradek broker` flags.
    args = build_parser().parse_args(container["args"])
    assert args.voters == ",".join(
        f"{i}=events-{i}.events-brokers.prod.svc:9092" for i in range(3))
    assert args.host == "$(ODRADEK_ADVERTISED_HOST)"
    assert args.config == []  # spec.config goes to the brokers live (config_change)
    assert args.data_dir.startswith(cl.DATA_DIR)


def test_pdb_and_services() -> None:
    rendered = objects()
    assert rendered["PodDisruptionBudget/events"]["spec"]["maxUnavailable"] == 1
    assert rendered["Service/events-brokers"]["spec"]["clusterIP"] == "None"
    assert rendered["Service/events-bootstrap"]["spec"]["ports"][0]["port"] == 9092


def test_an_image_change_rolls_the_pods_and_a_config_change_does_not() -> None:
    def pod_hash(spec: dict[str, Any]) -> str:
        sts = objects(spec)["StatefulSet/events"]
        return str(sts["spec"]["template"]["metadata"]["annotations"]["odradek.io/config-hash"])

    assert pod_hash(SPEC) == pod_hash(dict(SPEC))
    assert pod_hash(SPEC) != pod_hash({**SPEC, "image": "odradek:2"})
    assert pod_hash(SPEC) == pod_hash({**SPEC, "config": {"retention.ms": 2000}})
    assert pod_hash(SPEC) == pod_hash({**SPEC, "brokers": 3})


def test_config_changes_make_the_cluster_defaults_exactly_the_spec() -> None:
    assert cl.config_change({"retention.ms": "1"}, {"retention.ms": "1"}) is None
    assert cl.config_change({}, {}) is None
    assert cl.config_change({"retention.ms": "1", "segment.bytes": "4096"},
                            {"retention.ms": "2", "cleanup.policy": "compact"}) == (
        {"retention.ms": "2", "cleanup.policy": "compact"}, ["segment.bytes"])


@pytest.mark.parametrize("spec", [{"brokers": 2, "voters": 3}, {"brokers": 5, "voters": 2},
                                  {"brokers": 3, "authorization": {"enabled": True}}])
def test_refused_specs(spec: dict[str, Any]) -> None:
    with pytest.raises(cl.SpecError):
        cl.desired(spec, "x", "ns")


def test_voters_default_to_the_first_three() -> None:
    assert cl.desired({"brokers": 5}, "x", "ns").voters == 3
    assert cl.desired({"brokers": 1}, "x", "ns").voters == 1
    assert cl.desired({"brokers": 2}, "x", "ns").voters == 1


def test_conditions() -> None:
    c = cl.desired({"brokers": 3}, "x", "ns")
    up = cl.conditions(c, cl.ClusterState(3, 3, 3, True))
    assert up["Ready"].ready and up["Reconciling"].status == "False"
    assert up["Degraded"].status == "False"
    rolling = cl.conditions(c, cl.ClusterState(2, 1, 3, True))
    assert not rolling["Ready"].ready and rolling["Reconciling"].status == "True"
    down = cl.conditions(c, cl.ClusterState(2, 3, 3, True))
    assert down["Degraded"].status == "True" and not down["Ready"].ready
    sts = {"metadata": {"generation": 2}, "status": {
        "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3, "replicas": 3}}
    assert cl.state_of(sts) == cl.ClusterState(3, 3, 3, True)
    assert cl.state_of(None) == cl.ClusterState(0, 0, 0, False)


def test_scale_down_drains_first_then_shrinks() -> None:
    c = cl.desired({"brokers": 3}, "x", "ns")
    assert cl.scale_plan(c, None, {}, 3) == cl.ScalePlan(3)  # new cluster
    assert cl.scale_plan(c, 2, {}, 3) == cl.ScalePlan(3)  # growth
    draining = cl.scale_plan(c, 5, {0: 4, 3: 2, 4: 0}, 3)
    assert draining.replicas == 5 and draining.drain == (3,) and draining.waiting
    assert cl.scale_plan(c, 5, {0: 4, 1: 4, 2: 4}, 3) == cl.ScalePlan(3)


def test_scale_down_refusals() -> None:
    below_rf = cl.scale_plan(cl.desired({"brokers": 3}, "x", "ns"), 4, {}, 4)
    assert below_rf.refused and below_rf.refused.reason == "ScaleDownRefused"
    assert below_rf.replicas == 4 and not below_rf.drain
    below_voters = cl.scale_plan(cl.desired({"brokers": 2}, "x", "ns", 3), 4, {}, 1)
    assert below_voters.refused and "voters" in below_voters.refused.message
    explicit = cl.desired({"brokers": 2, "voters": 1}, "x", "ns", 1)
    assert cl.scale_plan(explicit, 4, {}, 1) == cl.ScalePlan(2)


def test_balance_moves_onto_a_new_broker() -> None:
    placements = [("t", p, (p % 3, (p + 1) % 3)) for p in range(6)]  # 12 replicas on 0-2
    assert cl.needs_balance(placements, [0, 1, 2, 3])
    assert not cl.needs_balance(placements, [0, 1, 2])
    moves = cl.balance_moves(placements, [0, 1, 2, 3])
    after = dict(((t, p), r) for t, p, r in placements)
    after.update({(t, p): r for t, p, r in moves})
    counts = [sum(b in r for r in after.values()) for b in range(4)]
    assert max(counts) - min(counts) <= 1 and counts[3] == 3
    assert all(len(set(r)) == 2 for r in after.values())
    assert len({(t, p) for t, p, _ in moves}) == len(moves)
    # Followers move before preferred leaders.
    assert all(after[(t, p)][0] == placements[p][2][0] for t, p, _ in moves)
    assert cl.balance_moves([], [0, 1]) == []


def test_pod_scheduling_and_user() -> None:
    """spec.pod goes into the pod spec (the rack's spread constraint first); the pods run
    as the image's non-root user with the volume group-owned by it."""
    zones = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
             "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "events"}}}
    pod_fields = {"nodeSelector": {"disk": "ssd"}, "priorityClassName": "high",
                  "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                  "affinity": {"podAntiAffinity": {
                      "preferredDuringSchedulingIgnoredDuringExecution": [{
                          "weight": 100, "podAffinityTerm": {
                              "topologyKey": "kubernetes.io/hostname",
                              "labelSelector": {"matchLabels": {
                                  "app.kubernetes.io/name": "odradek"}}}}]}},
                  "topologySpreadConstraints": [zones]}
    sts = objects({**SPEC, "pod": pod_fields})["StatefulSet/events"]
    kubernetes_validate.validate(sts, kubernetes_validate.latest_version(), strict=True)
    pod = sts["spec"]["template"]["spec"]
    for key in ("nodeSelector", "priorityClassName", "tolerations", "affinity"):
        assert pod[key] == pod_fields[key]
    spread = pod["topologySpreadConstraints"]
    assert [s["topologyKey"] for s in spread] == ["topology.kubernetes.io/zone",
                                                  "kubernetes.io/hostname"]
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == (
        cl.BROKER_UID)
    assert "affinity" not in objects()["StatefulSet/events"]["spec"]["template"]["spec"]


def test_voters_of_a_running_cluster_never_change() -> None:
    # A scale-down below the voters re-rendered the StatefulSet with voters for 2 brokers:
    # the roll restarted broker 1 with --voters [0] and its data directory refused it.
    running = cl.render_stateful_set(cl.desired({"brokers": 3}, "x", "ns"), OWNER)
    assert cl.voters_of(running) == 3 and cl.voters_of(None) is None
    refused = cl.desired({"brokers": 2}, "x", "ns", cl.voters_of(running))
    assert refused.voters == 3
    assert cl.config_hash(refused) == cl.config_hash(cl.desired({"brokers": 3}, "x", "ns"))
    plan = cl.scale_plan(refused, 3, {}, 1)
    assert plan.refused and plan.refused.reason == "ScaleDownRefused" and plan.replicas == 3
    # Growing a one-broker cluster keeps its single voter.
    assert cl.desired({"brokers": 3}, "x", "ns", 1).voters == 1
    with pytest.raises(cl.SpecError, match="fixed when it is created"):
        cl.desired({"brokers": 3, "voters": 1}, "x", "ns", 3)
