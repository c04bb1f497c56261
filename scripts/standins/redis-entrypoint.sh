#!/bin/sh
# The official image builds Redis with protected mode off (it lives on a private network); Debian's does not.
if [ "${1:-}" = redis-server ]; then exec "$@" --protected-mode no; fi
exec "$@"
