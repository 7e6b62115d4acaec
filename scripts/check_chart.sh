#!/usr/bin/env bash
# Lints the Helm chart and validates what it renders against Kubernetes' schemas.
# helm and kubeconform are built with `go install` from the Go module proxy, and the
# Kubernetes JSON schemas come from the kubernetes-validate wheel on PyPI (kubeconform
# would otherwise download them from the web); all are cached in .tools/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=$repo/.tools
chart=$repo/helm/engagement-scoring
HELM_VERSION=v3.16.4
KUBECONFORM_VERSION=v0.6.7
K8S_SCHEMAS_WHEEL=kubernetes-validate==1.37.0
K8S_VERSION=v1.31.0
mkdir -p "$tools/bin"

if [ ! -x "$tools/bin/helm" ]; then
  echo "chart: building helm $HELM_VERSION with go install (first time only)"
  GOBIN=$tools/bin go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
if [ ! -x "$tools/bin/kubeconform" ]; then
  GOBIN=$tools/bin go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi
schemas=$tools/k8s-schemas/$K8S_VERSION-standalone-strict
if [ ! -d "$schemas" ]; then
  echo "chart: fetching Kubernetes JSON schemas ($K8S_SCHEMAS_WHEEL)"
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" "$K8S_SCHEMAS_WHEEL"
  mkdir -p "$tools/k8s-schemas"
  (cd "$work" && python3 -m zipfile -e ./*.whl unpacked)
  python3 "$repo/scripts/standalone_k8s_schemas.py" \
    "$work/unpacked/kubernetes_validate/kubernetes-json-schema/$K8S_VERSION-local-strict" \
    "$schemas.partial"
  mv "$schemas.partial" "$schemas"
  rm -rf "$work"
fi

export HELM_CACHE_HOME=$tools/helm/cache HELM_CONFIG_HOME=$tools/helm/config HELM_DATA_HOME=$tools/helm/data
"$tools/bin/helm" lint --strict "$chart"
"$tools/bin/helm" lint --strict "$chart" -f "$chart/ci-all-features.yaml"

validate() {
  # Prometheus Operator kinds have no schema in Kubernetes itself; their content is
  # checked by tests/integration/test_observability.py instead.
  "$tools/bin/kubeconform" -strict -summary \
    -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -skip ServiceMonitor,PrometheusRule \
    -kubernetes-version "${K8S_VERSION#v}"
}
"$tools/bin/helm" template release "$chart" | validate
"$tools/bin/helm" template release "$chart" -f "$chart/ci-all-features.yaml" | validate
if "$tools/bin/helm" template release "$chart" --set config.tierScheme=nonsense >/dev/null 2>&1; then
  echo "chart: values.schema.json accepted an invalid tierScheme" >&2
  exit 1
fi
echo "chart: lint and kubeconform passed"
