"""The CustomResourceDefinitions the operator owns, defined once here.

deploy/crds/*.yaml is rendered from this module by scripts/gen_crds.py (a unit test fails
when the committed files are stale); tests hand the same definitions to the API mock.
The schemas reject at apply time what they can (patterns, ranges, enums, CEL rules); what
only the brokers can judge becomes a condition at reconcile time.
"""

from __future__ import annotations

from typing import Any

GROUP = "odradek.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

Schema = dict[str, Any]

# A Kafka topic name: Kafka's own rule (legal characters, at most 249 of them).
TOPIC_NAME_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"
# A DNS-1123 label: names that become Kubernetes object names (Secrets, Services).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CONFIG_KEY_PATTERN = r"^[a-z0-9]+(\.[a-z0-9]+)*$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"
ACL_OPERATIONS = ["all", "read", "write", "create", "delete", "alter", "describe",
                  "describe_configs", "alter_configs", "idempotent_write"]


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _int(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def _obj(description: str, properties: dict[str, Schema], required: list[str] | None = None,
         rules: list[dict[str, str]] | None = None) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def _immutable(schema: Schema, what: str) -> Schema:
    return {**schema, "x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": f"{what} is immutable"}]}


def _config_map(description: str) -> Schema:
    # Values may be written as YAML numbers (retention.ms: 86400000) or strings.
    return {"type": "object", "description": description, "maxProperties": 100,
            "x-kubernetes-validations": [{
                # A raw CEL string: "\." is no escape CEL knows.
                "rule": f"self.all(k, k.matches(r'{CONFIG_KEY_PATTERN}'))",
                "message": "config keys look like retention.ms"}],
            "additionalProperties": {"x-kubernetes-int-or-string": True}}


CLUSTER_REF = _str("Name of the Cluster (same namespace) whose brokers hold this; the "
                   "operator's ODRADEK_BOOTSTRAP overrides it", pattern=DNS_LABEL_PATTERN,
                   maxLength=52)

CONDITIONS: Schema = {
    "type": "array", "description": "Ready and friends, in the Kubernetes convention",
    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
    "items": _obj("A condition", {
        "type": _str("Ready, Reconciling, Degraded, ..."),
        "status": _str("True, False or Unknown", enum=["True", "False", "Unknown"]),
        "reason": _str("CamelCase reason"),
        "message": _str("What happened, for people"),
        "lastTransitionTime": _str("When status last changed", format="date-time"),
        "observedGeneration": _int("The generation this condition is about", minimum=0),
    }, required=["type", "status"]),
}
OBSERVED_GENERATION = _int("metadata.generation last reconciled", minimum=0)

AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
READY = {"name": "Ready", "type": "string",
         "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}


# -- Topic ---------------------------------------------------------------------------------

TOPIC_SPEC = _obj("The topic as it should be in the brokers", {
    "clusterRef": CLUSTER_REF,
    "topicName": _immutable(_str("Name in the brokers (default: metadata.name)",
                                 pattern=TOPIC_NAME_PATTERN), "topicName"),
    "partitions": _int("Number of partitions; may grow, never shrink", minimum=1,
                       maximum=10_000, **{"x-kubernetes-validations": [
                           {"rule": "self >= oldSelf",
                            "message": "partitions may not decrease"}]}),
    "replicationFactor": _int("Replicas per partition (changed by reassignment)",
                              minimum=1, maximum=7, default=3),
    "config": _config_map("Topic configs (retention.ms, cleanup.policy, ...); others are "
                          "kept at the brokers' defaults"),
}, required=["partitions"])

TOPIC_STATUS = _obj("What the brokers report", {
    "observedGeneration": OBSERVED_GENERATION,
    "topicName": _str("The topic this resource manages"),
    "topicId": _str("The brokers' id of the topic"),
    "conditions": CONDITIONS,
    "partitions": {"type": "array", "items": _obj("One partition", {
        "partition": _int("Partition number"),
        "leader": _int("Broker id of the leader, -1: none"),
        "replicas": {"type": "array", "items": {"type": "integer"}},
        "inSyncReplicas": {"type": "array", "items": {"type": "integer"}},
    })},
})

# -- User ----------------------------------------------------------------------------------

ACL_RULE = _obj("One ACL binding for this user's principal (User:<name>)", {
    "resource": _obj("What the rule is about", {
        "type": _str("Resource type", enum=["topic", "group", "cluster"]),
        "name": _str("Resource name (or prefix); '*' for all; not for cluster",
                     minLength=1, maxLength=249),
        "patternType": _str("literal or prefixed", enum=["literal", "prefixed"],
                            default="literal"),
    }, required=["type"], rules=[
        {"rule": "self.type == 'cluster' || has(self.name)",
         "message": "topic and group rules need a name"}]),
    "operations": {"type": "array", "minItems": 1, "description": "Operations allowed/denied",
                   "items": {"type": "string", "enum": ACL_OPERATIONS}},
    "type": _str("allow or deny (deny wins)", enum=["allow", "deny"], default="allow"),
    "host": _str("Client IP address or '*'", default="*"),
}, required=["resource", "operations"])

USER_SPEC = _obj("A user of the brokers and what it may do", {
    "clusterRef": CLUSTER_REF,
    "authentication": _obj("How the user proves who it is", {
        "type": _str("scram-sha-512 (a generated password in a Secret) or tls (a client "
                     "certificate in a kubernetes.io/tls Secret, from the CA of the "
                     "clusterRef Cluster, else the operator's)",
                     enum=["scram-sha-512", "tls"]),
    }, required=["type"]),
    "authorization": _obj("ACLs", {
        "acls": {"type": "array", "maxItems": 500, "items": ACL_RULE},
    }),
}, required=["authentication"])

USER_STATUS = _obj("The user in the brokers", {
    "observedGeneration": OBSERVED_GENERATION,
    "username": _str("The SCRAM user name (metadata.name)"),
    "secret": _str("Secret holding the credentials (scram-sha-512: username, password, "
                   "sasl.mechanism, bootstrap; tls: ca.crt, tls.crt, tls.key)"),
    "acls": _int("ACL bindings applied"),
    "conditions": CONDITIONS,
})

# -- ConsumerGroup -------------------------------------------------------------------------

RESET = _obj("An offset reset, applied once per requestId (the group must have no members "
             "today: the brokers refuse a reset of a live group)", {
    "requestId": _str("Change it to ask for another reset", minLength=1, maxLength=128),
    "to": _str("Where to move the offsets", enum=["earliest", "latest", "timestamp", "offset"]),
    "timestamp": _str("For to=timestamp: the first offset at or after this time",
                      format="date-time"),
    "offset": _int("For to=offset: this offset (clamped to the log)", minimum=0),
    "topics": {"type": "array", "description": "What to reset (default: spec.topics)",
               "items": _obj("A topic, or some of its partitions", {
                   "topic": _str("Topic name", pattern=TOPIC_NAME_PATTERN),
                   "partitions": {"type": "array", "items": _int("Partition", minimum=0)},
                   "offsets": {"type": "array", "description": "Explicit offsets (to=offset)",
                               "items": _obj("An offset for one partition", {
                                   "partition": _int("Partition", minimum=0),
                                   "offset": _int("Offset", minimum=0),
                               }, required=["partition", "offset"])},
               }, required=["topic"])},
}, required=["requestId", "to"], rules=[
    {"rule": "self.to != 'timestamp' || has(self.timestamp)",
     "message": "to=timestamp needs timestamp"},
    {"rule": "self.to != 'offset' || has(self.offset) || "
             "(has(self.topics) && self.topics.all(t, has(t.offsets)))",
     "message": "to=offset needs offset, or offsets for every topic"},
])

GROUP_SPEC = _obj("A consumer group the platform declares", {
    "clusterRef": CLUSTER_REF,
    "groupId": _immutable(_str("Group id in the brokers (default: metadata.name)",
                               minLength=1, maxLength=249), "groupId"),
    "topics": {"type": "array", "description": "Topics the group reads",
               "items": _str("Topic name", pattern=TOPIC_NAME_PATTERN)},
    "reset": RESET,
})

GROUP_STATUS = _obj("The group as its coordinator reports it", {
    "observedGeneration": OBSERVED_GENERATION,
    "groupId": _str("Group id"),
    "state": _str("EMPTY, RECONCILING, STABLE or UNKNOWN"),
    "members": _int("Members"),
    "lag": _int("Total lag over the partitions with a known lag"),
    "partitions": {"type": "array", "items": _obj("Lag of one partition", {
        "topic": _str("Topic"), "partition": _int("Partition"),
        "committedOffset": _int("-1: none"), "logEndOffset": _int("-1: unknown"),
        "lag": _int("-1: unknown"),
    })},
    "lastReset": _obj("The outcome of the last reset request", {
        "requestId": _str("Its requestId"),
        "outcome": _str("Applied or Refused", enum=["Applied", "Refused"]),
        "message": _str("Details, or the brokers' reason"),
        "time": _str("When", format="date-time"),
        "changes": _int("Partitions whose committed offset moved"),
    }),
    "conditions": CONDITIONS,
})

# -- Cluster -------------------------------------------------------------------------------

CLUSTER_SPEC = _obj("A cluster of brokers", {
    "brokers": _int("Number of brokers (StatefulSet replicas)", minimum=1, maximum=100,
                    default=3),
    "voters": _int("Metadata voters: the first N ordinals (default 3; 1 below 3 "
                   "brokers); fixed when the cluster is created",
                   enum=[1, 3, 5]),
    "image": _str("Broker image", default="odradek:latest", minLength=1),
    "port": _int("gRPC port", minimum=1024, maximum=65535, default=9092),
    "storage": _obj("One volume claim per broker", {
        "size": _str("Requested size", pattern=QUANTITY_PATTERN, default="10Gi"),
        "storageClassName": _str("Storage class (default: the cluster's)"),
    }),
    "resources": {"type": "object", "description": "Container resources (requests, limits)",
                  "x-kubernetes-preserve-unknown-fields": True},
    "config": _config_map("Cluster-wide topic defaults (retention.ms, ...) for topics that "
                          "do not set them, applied to the brokers live (no restart)"),
    "rack": _obj("Rack awareness", {
        "topologyKey": _str("Node label whose value is the broker's rack, e.g. "
                            "topology.kubernetes.io/zone"),
    }),
    "pod": _obj("Scheduling of the broker pods (as in a pod spec)", {
        "nodeSelector": {"type": "object", "description": "Node labels the pods need",
                         "additionalProperties": {"type": "string"}},
        "affinity": {"type": "object", "description": "Pod affinity (a core/v1 Affinity)",
                     "x-kubernetes-preserve-unknown-fields": True},
        "tolerations": {"type": "array", "description": "Taints the pods tolerate",
                        "items": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True}},
        "topologySpreadConstraints": {
            "type": "array", "description": "Added to the one rack.topologyKey makes",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        "priorityClassName": _str("Priority class of the broker pods"),
    }),
    "tls": _obj("TLS on the brokers' listener (mutual TLS: brokers and the operator "
                "present certificates)", {
        "enabled": {"type": "boolean", "default": False, "description": "TLS on"},
        "secretName": _str("A Secret of your own with the brokers' certificate (tls.crt, "
                           "tls.key, ca.crt; SANs *.<name>-brokers.<namespace>.svc); "
                           "default: one the operator signs with the CA and renews",
                           pattern=DNS_LABEL_PATTERN),
        "caSecretName": _str("The CA Secret (tls.crt, tls.key) that signs the brokers' "
                             "certificate; generated and renewed by the operator when "
                             "absent (default <name>-ca)", pattern=DNS_LABEL_PATTERN),
    }),
    "listeners": _obj("Listeners besides the brokers' own (in-cluster gRPC)", {
        "internal": _obj(
            "In-cluster clients the brokers' own listener does not suit: Kafka clients, "
            "and with tls.enabled SCRAM clients without a certificate (the brokers' own "
            "listener requires one). On the client Service and each pod's DNS name", {
                "port": _int("gRPC port", minimum=1024, maximum=65535),
                "kafkaPort": _int("Kafka port", minimum=1024, maximum=65535),
                "clientAuth": _str("With TLS: none (SCRAM or tokens) or required (client "
                                   "certificates signed by the cluster CA)",
                                   enum=["none", "required"], default="none"),
            }, rules=[
                {"rule": "has(self.port) || has(self.kafkaPort)",
                 "message": "listeners.internal needs port, kafkaPort or both"},
                {"rule": "!has(self.port) || !has(self.kafkaPort) || "
                         "self.port != self.kafkaPort",
                 "message": "kafkaPort must differ from port"},
            ]),
        "external": _obj(
            "Clients outside Kubernetes: a Service per broker (and a bootstrap Service), "
            "whose addresses the brokers advertise to clients that come in through them. "
            "With tls.enabled it speaks TLS and, by default, asks for no client "
            "certificate (clients log in with SCRAM)", {
                "type": _str("How each broker is exposed", enum=["NodePort", "LoadBalancer"],
                             default="NodePort"),
                "port": _int("Container and Service port of the external gRPC listener",
                             minimum=1024, maximum=65535, default=9094),
                "kafkaPort": _int("Also an external Kafka listener on this port",
                                  minimum=1024, maximum=65535),
                "nodePortBase": _int("NodePort: broker i is reached at nodePortBase + i "
                                     "(its Kafka listener at nodePortBase + 100 + i)",
                                     minimum=30000, maximum=32567),
                "advertisedHostTemplate": _str(
                    "The host clients reach broker {ordinal} at, e.g. "
                    "broker-{ordinal}.kafka.example.com (required for LoadBalancer; "
                    "NodePort default: the IP of the broker's node)", minLength=1),
                "clientAuth": _str("With TLS: none (SCRAM or tokens) or required (client "
                                   "certificates signed by the cluster CA)",
                                   enum=["none", "required"], default="none"),
            }, rules=[
                {"rule": "self.type != 'NodePort' || has(self.nodePortBase)",
                 "message": "a NodePort external listener needs nodePortBase"},
                {"rule": "self.type != 'LoadBalancer' || has(self.advertisedHostTemplate)",
                 "message": "a LoadBalancer external listener needs advertisedHostTemplate"},
                {"rule": "!has(self.kafkaPort) || self.kafkaPort != self.port",
                 "message": "kafkaPort must differ from port"},
            ]),
    }),
    "authorization": _obj("ACL enforcement; the operator makes the super user User:admin "
                          "(SCRAM, password in Secret <name>-admin) and logs in as it", {
        "enabled": {"type": "boolean", "default": False, "description": "Authorization on"},
        "superUsers": {"type": "array", "items": _str(
            "Further principals allowed everything, e.g. User:ops", pattern=r"^User:.+$")},
    }),
}, rules=[
    {"rule": "!has(self.voters) || self.voters <= self.brokers",
     "message": "voters may not exceed brokers"},
    {"rule": "!has(self.listeners) || !has(self.listeners.external) || "
             "self.listeners.external.port != self.port",
     "message": "listeners.external.port must differ from port"}])

CLUSTER_STATUS = _obj("The cluster as the operator sees it", {
    "observedGeneration": OBSERVED_GENERATION,
    "brokers": _int("Brokers wanted"),
    "readyBrokers": _int("Broker pods ready"),
    "bootstrap": _str("Client address (the client Service)"),
    "superUserSecret": _str("With authorization: the Secret of the super user (admin) "
                            "that the operator made and logs in as"),
    "conditions": CONDITIONS,
})

# -- the definitions -----------------------------------------------------------------------

KINDS: dict[str, dict[str, Any]] = {
    "Cluster": {"plural": "clusters", "singular": "cluster", "short": ["odc"],
                "spec": CLUSTER_SPEC, "status": CLUSTER_STATUS,
                "columns": [
                    {"name": "Brokers", "type": "integer", "jsonPath": ".spec.brokers"},
                    {"name": "Ready Brokers", "type": "integer",
                     "jsonPath": ".status.readyBrokers"}, READY, AGE]},
    "Topic": {"plural": "topics", "singular": "topic", "short": ["ot"],
              "spec": TOPIC_SPEC, "status": TOPIC_STATUS,
              "columns": [
                  {"name": "Partitions", "type": "integer", "jsonPath": ".spec.partitions"},
                  {"name": "Replicas", "type": "integer",
                   "jsonPath": ".spec.replicationFactor"}, READY, AGE]},
    "ConsumerGroup": {"plural": "consumergroups", "singular": "consumergroup",
                      "short": ["ocg"], "spec": GROUP_SPEC, "status": GROUP_STATUS,
                      "columns": [
                          {"name": "State", "type": "string", "jsonPath": ".status.state"},
                          {"name": "Members", "type": "integer",
                           "jsonPath": ".status.members"},
                          {"name": "Lag", "type": "integer", "jsonPath": ".status.lag"},
                          READY, AGE]},
    "User": {"plural": "users", "singular": "user", "short": ["ou"],
             "spec": USER_SPEC, "status": USER_STATUS,
             "columns": [
                 {"name": "Authentication", "type": "string",
                  "jsonPath": ".spec.authentication.type"},
                 {"name": "Secret", "type": "string", "jsonPath": ".status.secret"},
                 READY, AGE]},
}


def plural(kind: str) -> str:
    return str(KINDS[kind]["plural"])


def crd(kind: str) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    k = KINDS[kind]
    schema = {"type": "object", "required": ["spec"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object"}, "spec": k["spec"], "status": k["status"]}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{k['plural']}.{GROUP}",
                     "labels": {"app.kubernetes.io/part-of": "odradek"}},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"kind": kind, "plural": k["plural"], "singular": k["singular"],
                      "shortNames": k["short"], "listKind": f"{kind}List",
                      "categories": ["odradek"]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}},
                "additionalPrinterColumns": k["columns"],
            }],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name (deploy/crds/<name>) -> CRD, for every kind."""
    return {f"{KINDS[kind]['singular']}.yaml": crd(kind) for kind in KINDS}


def render(definition: dict[str, Any]) -> str:
    import yaml

    header = "# Generated by scripts/gen_crds.py from odradek/operator/crds.py: do not edit.\n"
    return header + yaml.safe_dump(definition, sort_keys=False, width=100)
