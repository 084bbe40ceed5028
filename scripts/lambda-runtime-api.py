#!/usr/bin/env python3
"""A Lambda Runtime API for one invocation (Python standard library only).

scripts/prove-arm64.sh starts one per function: a bootstrap started with
AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port> gets `--event` as its one invocation, and whichever
endpoint it reaches first - .../invocation/{id}/response, .../invocation/{id}/error or
/runtime/init/error - is written as one JSON object to `--result` ("timeout" when `--timeout`
passed first, "exited" when SIGTERM came first: the caller's sign that the function exited
without an answer). A second GET .../invocation/next waits, as in a frozen sandbox. The server
stays up until SIGTERM (the caller stops the function first), at most `--timeout` more seconds;
it exits 0 when the outcome was /response or /error, else 1.

Listens on 127.0.0.1 only, on a free port it writes to `--port-file` once it accepts.

Usage: lambda-runtime-api.py --function NAME --event EVENT.json --port-file FILE --result FILE
                             [--timeout 60] [--deadline-ms 30000]
"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--function", required=True, help="the function's name (in the invoked ARN)")
    ap.add_argument("--event", required=True, help="file holding the invocation's payload (JSON)")
    ap.add_argument("--port-file", required=True, help="where to write the port once listening")
    ap.add_argument("--result", required=True, help="where to write the outcome (JSON)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for an outcome")
    ap.add_argument("--deadline-ms", type=int, default=30_000, help="the invocation's time limit")
    args = ap.parse_args()

    with open(args.event, "rb") as f:
        event = f.read()
    json.loads(event)  # refuse to serve a payload that is not JSON

    started = time.time()
    request_id = str(uuid.uuid4())
    state = {"next_at": None, "outcome": None}
    lock = threading.Lock()
    done = threading.Event()
    stop_polls = threading.Event()  # never set: a poll after the invocation waits until exit

    def finish(endpoint: str, body: bytes, headers) -> None:
        with lock:
            if state["outcome"] is not None:
                return
            state["outcome"] = {
                "function": args.function,
                "endpoint": endpoint,
                "next_at": state["next_at"],
                "done_at": time.time(),
                "started_at": started,
                "error_type": headers.get("Lambda-Runtime-Function-Error-Type") if headers else None,
                "body": body.decode("utf-8", "replace")[:2000],
            }
        done.set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):  # quiet: the outcome is the report
            pass

        def reply(self, code: int, payload: dict, headers=None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                return self.reply(404, {"errorType": "NotFound", "errorMessage": self.path})
            with lock:
                first = state["next_at"] is None
                if first:
                    state["next_at"] = time.time()
            if not first:
                # One invocation only: later polls wait, as in a frozen sandbox.
                stop_polls.wait()
                return
            deadline = int(time.time() * 1000) + args.deadline_ms
            trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(event)))
            self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                f"arn:aws:lambda:{os.environ.get('AWS_REGION', 'us-east-1')}:123456789012:function:{args.function}",
            )
            self.send_header("Lambda-Runtime-Trace-Id", trace)
            self.end_headers()
            self.wfile.write(event)

        def do_POST(self):
            body = self.body()
            if self.path == f"{PREFIX}/init/error":
                self.reply(202, {"status": "OK"})
                return finish("/init/error", body, self.headers)
            for kind in ("response", "error"):
                prefix, suffix = f"{PREFIX}/invocation/", f"/{kind}"
                if self.path.startswith(prefix) and self.path.endswith(suffix):
                    if self.path[len(prefix) : -len(suffix)] != request_id:
                        return self.reply(400, {"errorType": "InvalidRequestID", "errorMessage": self.path})
                    self.reply(202, {"status": "OK"})
                    return finish(suffix, body, self.headers)
            self.reply(404, {"errorType": "NotFound", "errorMessage": self.path})

    stop = threading.Event()

    def terminate(*_):
        finish("exited", b"", None)
        stop.set()

    signal.signal(signal.SIGTERM, terminate)
    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            # A function stopped while its connection is open (as the caller does): not news.
            if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)  # whole or absent: the caller polls for it

    if not done.wait(args.timeout):
        finish("timeout", b"", None)
    tmp = args.result + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state["outcome"], f)
    os.replace(tmp, args.result)
    stop.wait(args.timeout)
    server.shutdown()
    return 0 if state["outcome"]["endpoint"] in ("/response", "/error") else 1


if __name__ == "__main__":
    sys.exit(main())
