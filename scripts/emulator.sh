#!/usr/bin/env bash
# Starts (or stops) moto's server, the AWS API emulator, on 127.0.0.1:${EMULATOR_PORT:-5000},
# through scripts/moto-server.py (moto with its repairs for many clients at once).
# Several may run side by side, one per port (e.g. SQS, S3 and SSM on one of their own, named
# to the SDK by AWS_ENDPOINT_URL_SQS and friends: each is one Python process, one core at
# most). `stop` stops every one.
# Usage: [EMULATOR_PORT=5001] scripts/emulator.sh start|stop
set -euo pipefail
cd "$(dirname "$0")/.."
port="${EMULATOR_PORT:-5000}"
mkdir -p .local

answering() { curl -fsS "http://127.0.0.1:${port}/moto-api/" >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    if answering; then echo "emulator already answering on 127.0.0.1:${port}"; exit 0; fi
    nohup .venv/bin/python scripts/moto-server.py -H 127.0.0.1 -p "$port" > ".local/moto-${port}.log" 2>&1 &
    echo $! > ".local/moto-${port}.pid"
    for _ in $(seq 1 100); do
      if answering; then echo "emulator up on 127.0.0.1:${port}"; exit 0; fi
      sleep 0.1
    done
    echo "emulator did not start; see .local/moto-${port}.log" >&2; exit 1 ;;
  stop)
    for pidfile in .local/moto-*.pid; do
      [ -f "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"
    done ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
