#!/usr/bin/env bash
# Make sure a Redis answers at REDIS_TEST_URL's host:port (default 127.0.0.1:6379) for the tests:
# start the installed redis-server if it is down, install it from Debian's packages if it is missing.
set -euo pipefail
host=127.0.0.1
port=6379
ping() { (exec 3<>/dev/tcp/$host/$port && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
ping && exit 0
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "redis-server missing: installing it (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "Redis is not running on $host:$port and redis-server is not installed; install Redis or start it" >&2
    exit 1
  fi
fi
mkdir -p /tmp/agentserver-redis
redis-server --daemonize yes --bind 127.0.0.1 --port $port --save "" --appendonly no \
  --dir /tmp/agentserver-redis --logfile /tmp/agentserver-redis/redis.log
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "Redis did not start on $host:$port (see /tmp/agentserver-redis/redis.log)" >&2
exit 1
