#!/usr/bin/env bash
# Starts (or stops) moto's server, the AWS API emulator, on 127.0.0.1:5000.
# Usage: scripts/emulator.sh start|stop
set -euo pipefail
cd "$(dirname "$0")/.."
port="${EMULATOR_PORT:-5000}"
pidfile=".local/moto.pid"
mkdir -p .local

answering() { curl -fsS "http://127.0.0.1:${port}/moto-api/" >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    if answering; then echo "emulator already answering on 127.0.0.1:${port}"; exit 0; fi
    nohup .venv/bin/moto_server -H 127.0.0.1 -p "$port" > .local/moto.log 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 100); do
      if answering; then echo "emulator up on 127.0.0.1:${port}"; exit 0; fi
      sleep 0.1
    done
    echo "emulator did not start; see .local/moto.log" >&2; exit 1 ;;
  stop)
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
