#!/usr/bin/env bash
# End to end on a kind cluster, for users with Docker (CI does not run it: its machines
# have no Docker engine). Builds the image, installs the chart, waits for the brokers,
# applies the example topics and users, produces and consumes a record from a pod in the
# cluster, scales the brokers 3 -> 4 -> 3, and deletes the kind cluster (KEEP=1 keeps it).
#
#   scripts/kind-e2e.sh                 # needs docker, kind, kubectl, helm on PATH
#   KEEP=1 CLUSTER=mine scripts/kind-e2e.sh
set -euo pipefail

CLUSTER=${CLUSTER:-odradek-e2e}
NS=${NS:-odradek}
TAG=${TAG:-e2e}
TIMEOUT=${TIMEOUT:-300s}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is not on PATH" >&2; exit 2; }
done

step() { printf '\n== %s\n' "$*"; }

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    echo "kind-e2e: failed; the operator's log follows" >&2
    kubectl -n "$NS" logs deploy/odradek-operator --tail=100 >&2 || true
    kubectl -n "$NS" get clusters,topics,users,pods -o wide >&2 || true
  fi
  if [ "${KEEP:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" || true; fi
  exit "$rc"
}
trap cleanup EXIT

step "build the image odradek:$TAG"
docker build -t "odradek:$TAG" "$ROOT"

step "create kind cluster $CLUSTER and load the image"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind load docker-image "odradek:$TAG" --name "$CLUSTER"

step "install the chart"
helm upgrade --install odradek "$ROOT/helm/odradek" -n "$NS" --create-namespace --wait \
  --timeout "$TIMEOUT" \
  --set image.tag="$TAG" \
  --set image.pullPolicy=Never \
  --set cluster.storage.size=1Gi \
  --set cluster.resources.requests.cpu=100m \
  --set cluster.resources.requests.memory=256Mi \
  --set operator.resyncSeconds=10

step "wait for the Cluster"
kubectl -n "$NS" wait --for=condition=Ready clusters.odradek.io/odradek --timeout="$TIMEOUT"

step "apply the example topics and users (clusterRef odradek)"
for f in topics users; do
  sed 's/clusterRef: events/clusterRef: odradek/' "$ROOT/deploy/examples/$f.yaml" \
    | kubectl -n "$NS" apply -f -
done
kubectl -n "$NS" wait --for=condition=Ready topics.odradek.io --all --timeout="$TIMEOUT"
kubectl -n "$NS" wait --for=condition=Ready users.odradek.io --all --timeout="$TIMEOUT"
kubectl -n "$NS" get secret billing -o jsonpath='{.data.password}' | grep -q .

step "produce and consume from a pod in the cluster"
BOOTSTRAP=odradek-bootstrap.$NS.svc:9092
kubectl -n "$NS" run e2e-client --rm -i --restart=Never --image="odradek:$TAG" \
  --image-pull-policy=Never --env="ODRADEK_BOOTSTRAP=$BOOTSTRAP" --command -- sh -c '
    printf "k1:hello from kind\n" | odradek produce orders --key-separator :
    odradek consume orders --from-beginning --max-messages 1 --timeout-ms 20000' \
  | tee /dev/stderr | grep -q "hello from kind"

step "scale the brokers to 4 and back to 3"
for n in 4 3; do
  kubectl -n "$NS" patch clusters.odradek.io odradek --type merge -p "{\"spec\":{\"brokers\":$n}}"
  kubectl -n "$NS" wait --for=jsonpath='{.status.readyBrokers}'="$n" \
    clusters.odradek.io/odradek --timeout="$TIMEOUT"
  kubectl -n "$NS" wait --for=condition=Ready clusters.odradek.io/odradek --timeout="$TIMEOUT"
done
kubectl -n "$NS" get statefulset odradek -o jsonpath='{.spec.replicas}' | grep -qx 3

step "passed"
