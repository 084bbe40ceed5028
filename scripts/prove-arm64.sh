#!/usr/bin/env bash
# Proves that each function's bootstrap from `sam build` (Architecture=arm64) runs on the
# architecture it ships on: checks its ELF header says aarch64, then starts it once under
# qemu-user (qemu-aarch64 with the aarch64 glibc of libc6-arm64-cross) against a local Lambda
# Runtime API (scripts/lambda-runtime-api.py) that hands it one event - an API Gateway HTTP API
# (payload 2.0) request, an SQS batch or a scheduled event, after the function's own events in
# template.yaml. The function's start-up must succeed and its invocation must reach
# .../response or .../error (a handler refusing a dummy event is fine); /init/error, a crash
# or no answer within PROVE_TIMEOUT seconds fails the proof.
#
# Each function gets the environment the template gives it (Globals and its own), with every
# reference resolved against a moto emulator on 127.0.0.1:${PROVE_EMULATOR_PORT:-5050} (its
# own port, so it never shares state with a test run's emulator on 5000): the table, queues and
# buckets it names are created there, and the SSM parameters it reads at start-up hold a dummy
# secret. Partner URLs are replaced by a closed loopback port. Nothing leaves 127.0.0.1.
#
# Usage: scripts/prove-arm64.sh            (after `sam build --parameter-overrides Architecture=arm64`)
#        scripts/prove-arm64.sh --install  (only install qemu-user and the sysroot)
# PROVE_TIMEOUT=60: seconds each function gets. Logs: .local/prove-arm64/<Function>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

sysroot=/usr/aarch64-linux-gnu
timeout_s="${PROVE_TIMEOUT:-60}"
port="${PROVE_EMULATOR_PORT:-5050}"

# qemu-user and the aarch64 loader and libc (the bootstraps link glibc dynamically).
if ! command -v qemu-aarch64 >/dev/null || [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "qemu-user is missing and installing it needs root or sudo" >&2; exit 1; }
    sudo=sudo
  fi
  echo "== installing qemu-user and libc6-arm64-cross"
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq)
  $sudo "${apt[@]}" update
  $sudo "${apt[@]}" install -y --no-install-recommends qemu-user libc6-arm64-cross >/dev/null
fi
[ "${1:-}" = "--install" ] && exit 0

functions=$(python3 - <<'PY'
import re
text = open("template.yaml").read()
print("\n".join(re.findall(r"^  (\w+):\n    Type: AWS::Serverless::Function", text, re.M)))
PY
)
[ -n "$functions" ] || { echo "no functions in template.yaml" >&2; exit 1; }

# The emulator (moto, from the Makefile's venv), on a port of its own; stopped again if started here.
[ -f .venv/.installed ] || make deps
mkdir -p .local
started_emulator="" fn="" api=""
cleanup() {  # the function and Runtime API of an interrupted run, and the emulator if started here
  for pid in $fn $api; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$started_emulator" ] && [ -f ".local/moto-${port}.pid" ]; then
    kill "$(cat ".local/moto-${port}.pid")" 2>/dev/null || true
    rm -f ".local/moto-${port}.pid"
  fi
}
trap cleanup EXIT
emulator=$(EMULATOR_PORT="$port" scripts/emulator.sh start)
case "$emulator" in *"emulator up"*) started_emulator=yes ;; esac

root=$PWD
out=.local/prove-arm64
rm -rf "$out"
mkdir -p "$out/home"

# For each function: its environment ($out/<Function>.env, one KEY=VALUE a line) and its event
# ($out/<Function>.event.json); the resources they name are created on the emulator.
# shellcheck disable=SC2086 # one function name per word
.venv/bin/python - "$port" "$out" $functions <<'PY'
import datetime
import json
import re
import sys
import urllib.parse
import uuid

import boto3
import yaml

port, out, functions = sys.argv[1], sys.argv[2], sys.argv[3:]
endpoint = f"http://127.0.0.1:{port}"
region, account = "us-east-1", "123456789012"
secret = "prove-arm64-" + uuid.uuid4().hex  # 44 characters: fits every hook auth mode but standard-webhooks
aws = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="local", aws_secret_access_key="local")


class Loader(yaml.SafeLoader):
    pass


def intrinsic(loader, tag, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if tag == "Ref" else f"Fn::{tag}": value}


Loader.add_multi_constructor("!", intrinsic)
with open("template.yaml") as f:
    template = yaml.load(f, Loader)
resources = template.get("Resources", {})
params = {name: str(p["Default"]) if "Default" in p else "prove-arm64" for name, p in template.get("Parameters", {}).items()}
pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
          "AWS::StackName": "polis-arm64-proof", "AWS::NoValue": ""}
made = {}  # logical id -> {"Ref": ..., "Arn": ..., ...}


def create(logical_id):
    if logical_id in made:
        return made[logical_id]
    res = resources.get(logical_id)
    if res is None:
        sys.exit(f"prove-arm64: {logical_id} is neither a parameter nor a resource of template.yaml")
    kind, props = res.get("Type"), res.get("Properties") or {}
    name = f"polis-arm64-proof-{logical_id}"
    if kind == "AWS::DynamoDB::Table":
        ddb = boto3.client("dynamodb", **aws)
        spec = dict(TableName=name, AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"],
                    BillingMode="PAY_PER_REQUEST")
        if props.get("GlobalSecondaryIndexes"):
            spec["GlobalSecondaryIndexes"] = [{k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
                                              for g in props["GlobalSecondaryIndexes"]]
        try:
            ddb.create_table(**spec)
        except ddb.exceptions.ResourceInUseException:
            pass  # made by an earlier run on this emulator
        made[logical_id] = {"Ref": name, "Arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}"}
    elif kind == "AWS::SQS::Queue":
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        qname = name + (".fifo" if fifo else "")
        attrs = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
        url = boto3.client("sqs", **aws).create_queue(QueueName=qname, Attributes=attrs)["QueueUrl"]
        made[logical_id] = {"Ref": url, "QueueUrl": url, "QueueName": qname, "Arn": f"arn:aws:sqs:{region}:{account}:{qname}"}
    elif kind == "AWS::S3::Bucket":
        bucket = name.lower()
        s3 = boto3.client("s3", **aws)
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        made[logical_id] = {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}
    elif kind == "AWS::KMS::Key":
        try:
            key = boto3.client("kms", **aws).create_key(Description=name)["KeyMetadata"]
            made[logical_id] = {"Ref": key["KeyId"], "Arn": key["Arn"], "KeyId": key["KeyId"]}
        except Exception as e:  # an emulator without KMS: start-up only needs the name
            print(f"prove-arm64: {logical_id}: no KMS on the emulator ({type(e).__name__}); a made-up key ARN", file=sys.stderr)
            key_id = str(uuid.uuid4())
            made[logical_id] = {"Ref": key_id, "Arn": f"arn:aws:kms:{region}:{account}:key/{key_id}", "KeyId": key_id}
    else:
        # Not made on the emulator: a name of the right shape is what start-up reads.
        print(f"prove-arm64: {logical_id} ({kind}) is not created on the emulator; a made-up name", file=sys.stderr)
        made[logical_id] = {"Ref": name, "Arn": f"arn:aws:{str(kind).split('::')[1].lower()}:{region}:{account}:{name}"}
    return made[logical_id]


def resolve(value):
    if isinstance(value, (str, int, float, bool)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name in pseudo:
            return pseudo[name]
        return params[name] if name in params else create(name)["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, att = value["Fn::GetAtt"]
        got = create(logical_id)
        if att not in got:
            sys.exit(f"prove-arm64: !GetAtt {logical_id}.{att} is not supported here")
        return got[att]
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        def one(m):
            ref, _, att = m.group(1).partition(".")
            return resolve({"Fn::GetAtt": [ref, att]} if att and not ref.startswith("AWS::") else {"Ref": ref})
        return re.sub(r"\$\{([^}]+)\}", one, value["Fn::Sub"])
    if isinstance(value, dict) and "Fn::If" in value:
        name, when_true, when_false = value["Fn::If"]
        return resolve(when_true if holds(name) else when_false)
    sys.exit(f"prove-arm64: cannot resolve {value!r}")


def holds(condition):
    """A condition of the template's Conditions, on the parameters' defaults."""
    def check(c):
        if isinstance(c, dict) and "Condition" in c:
            return holds(c["Condition"])
        if isinstance(c, dict) and "Fn::Equals" in c:
            a, b = c["Fn::Equals"]
            return resolve(a) == resolve(b)
        if isinstance(c, dict) and "Fn::Not" in c:
            return not check(c["Fn::Not"][0])
        if isinstance(c, dict) and "Fn::And" in c:
            return all(check(x) for x in c["Fn::And"])
        if isinstance(c, dict) and "Fn::Or" in c:
            return any(check(x) for x in c["Fn::Or"])
        sys.exit(f"prove-arm64: cannot evaluate the condition {c!r}")
    return check(template.get("Conditions", {})[condition])


def loopback(value):
    """A URL elsewhere than this machine becomes a closed loopback port: no call leaves it."""
    if re.match(r"^https?://", value):
        host = urllib.parse.urlsplit(value).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            return "http://127.0.0.1:9"
    return value


now = datetime.datetime.now(datetime.timezone.utc)
epoch_ms = int(now.timestamp() * 1000)
globals_fn = (template.get("Globals") or {}).get("Function") or {}
ssm = boto3.client("ssm", **aws)
for fn in functions:
    props = resources[fn].get("Properties") or {}
    env = {}
    for source in ((globals_fn.get("Environment") or {}).get("Variables") or {},
                   (props.get("Environment") or {}).get("Variables") or {}):
        for key, value in source.items():
            env[key] = loopback(resolve(value))
    # Secrets the function reads at start-up (secrets::read of each *_PARAMETER): a dummy value.
    for key, value in env.items():
        if key.endswith("_PARAMETER") and value.startswith("/"):
            ssm.put_parameter(Name=value, Value=secret, Type="SecureString", Overwrite=True)
    memory = str(props.get("MemorySize", globals_fn.get("MemorySize", 128)))
    env.update({
        # What Lambda sets for every function (lambda_runtime requires the first three).
        "AWS_LAMBDA_FUNCTION_NAME": fn, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory, "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        "_HANDLER": "bootstrap", "TZ": ":UTC", "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        # The emulator, with dummy credentials; never the instance metadata service.
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true", "S3_FORCE_PATH_STYLE": "true",
    })
    for key, value in env.items():
        if "\n" in value:
            sys.exit(f"prove-arm64: {fn}: {key} holds a newline")
    with open(f"{out}/{fn}.env", "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in env.items()))

    # One event of the kind the function's first event source sends; {} when it has none (invoked directly).
    events = list((props.get("Events") or {}).values())
    kinds = [e.get("Type") for e in events]
    request_id = str(uuid.uuid4())
    if "HttpApi" in kinds:
        ev = (events[kinds.index("HttpApi")].get("Properties")) or {}
        method, route = str(ev.get("Method", "POST")).upper(), str(ev.get("Path", "/"))
        path_params = {p: ("SC-PROVE-ARM64" if p == "scoringId" else "prove-arm64") for p in re.findall(r"\{(\w+)\+?\}", route)}
        raw_path = re.sub(r"\{(\w+)\+?\}", lambda m: path_params[m.group(1)], route)
        headers = {"content-type": "application/json", "host": "polis-arm64-proof.local", "user-agent": "prove-arm64"}
        if "HOOK_SECRET_PARAMETER" in env:
            headers["x-hook-secret"] = secret  # the hook API's shared secret (hook_auth::SECRET_HEADER)
        event = {
            "version": "2.0", "routeKey": f"{method} {route}", "rawPath": raw_path, "rawQueryString": "",
            "headers": headers, "pathParameters": path_params, "isBase64Encoded": False,
            "requestContext": {
                "accountId": account, "apiId": "prove", "domainName": "polis-arm64-proof.local",
                "domainPrefix": "polis-arm64-proof", "requestId": request_id, "routeKey": f"{method} {route}",
                "stage": "$default", "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": epoch_ms,
                "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                         "userAgent": "prove-arm64"},
            },
        }
        if method not in ("GET", "HEAD", "DELETE"):
            event["body"] = "{}"
    elif "SQS" in kinds:
        queue = (events[kinds.index("SQS")].get("Properties") or {}).get("Queue")
        arn = resolve(queue) if queue is not None else f"arn:aws:sqs:{region}:{account}:polis-arm64-proof"
        attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": str(epoch_ms), "SenderId": account,
                      "ApproximateFirstReceiveTimestamp": str(epoch_ms)}
        if arn.endswith(".fifo"):
            attributes.update({"MessageGroupId": "prove-arm64", "MessageDeduplicationId": request_id,
                               "SequenceNumber": "18800000000000000000"})
        event = {"Records": [{
            "messageId": request_id, "receiptHandle": "prove-arm64", "body": "{}", "attributes": attributes,
            "messageAttributes": {}, "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b", "eventSource": "aws:sqs",
            "eventSourceARN": arn, "awsRegion": region,
        }]}
    elif "Schedule" in kinds or "ScheduleV2" in kinds:
        event = {"version": "0", "id": request_id, "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": account, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
                 "resources": [f"arn:aws:events:{region}:{account}:rule/polis-arm64-proof-{fn}"], "detail": {}}
    else:
        event = {}
    with open(f"{out}/{fn}.event.json", "w") as f:
        json.dump(event, f)
PY

# "aarch64", or what else the ELF header names.
elf_machine() {
  python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(20)
if len(head) < 20 or head[:4] != b"\x7fELF":
    print("not-ELF")
else:
    machine = struct.unpack("<H" if head[5] == 1 else ">H", head[18:20])[0]
    bits = {1: "32-bit", 2: "64-bit"}.get(head[4], "?")
    print({183: "aarch64", 62: "x86-64", 40: "arm"}.get(machine, f"machine-{machine}") + ("" if bits == "64-bit" else f"-{bits}"))
PY
}

echo "== each arm64 bootstrap once under qemu-aarch64 ($(qemu-aarch64 --version | head -1)), Runtime API on 127.0.0.1, AWS on the emulator :$port"
failed=()
count=0
proof_start=$(date +%s)
for f in $functions; do
  count=$((count + 1))
  boot=".aws-sam/build/$f/bootstrap"
  [ -x "$boot" ] || { printf '%-40s no bootstrap\n' "$f"; failed+=("$f"); continue; }
  arch=$(elf_machine "$boot")
  if [ "$arch" != aarch64 ]; then
    printf '%-40s %-8s not an arm64 binary\n' "$f" "$arch"; failed+=("$f"); continue
  fi
  rm -f "$out/$f.port" "$out/$f.result.json"
  python3 scripts/lambda-runtime-api.py --function "$f" --event "$out/$f.event.json" \
    --port-file "$out/$f.port" --result "$out/$f.result.json" --timeout "$timeout_s" &
  api=$!
  for _ in $(seq 1 100); do [ -s "$out/$f.port" ] && break; sleep 0.05; done
  [ -s "$out/$f.port" ] || { echo "the Runtime API for $f did not start" >&2; kill "$api" 2>/dev/null || true; exit 1; }
  mapfile -t environment < "$out/$f.env"
  launched=$(date +%s.%N)
  # Only the function's environment (env -i): no proxy, credentials or profile of this machine's.
  (cd ".aws-sam/build/$f" && exec env -i PATH=/usr/bin:/bin HOME="$root/$out/home" "${environment[@]}" \
    AWS_LAMBDA_RUNTIME_API="127.0.0.1:$(cat "$root/$out/$f.port")" LAMBDA_TASK_ROOT="$root/.aws-sam/build/$f" \
    qemu-aarch64 -L "$sysroot" ./bootstrap) > "$out/$f.log" 2>&1 &
  fn=$!
  # Until the Runtime API has an outcome (or gave up after PROVE_TIMEOUT), or the function exits;
  # then the function is stopped, then the Runtime API (which records an exit without an answer).
  while [ ! -s "$out/$f.result.json" ] && kill -0 "$api" 2>/dev/null && kill -0 "$fn" 2>/dev/null; do
    sleep 0.1
  done
  exited=""
  if kill -0 "$fn" 2>/dev/null; then
    kill "$fn" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$fn" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$fn" 2>/dev/null || true
    wait "$fn" 2>/dev/null || true
  else
    code=0; wait "$fn" || code=$?; exited="exited with status $code"
  fi
  kill "$api" 2>/dev/null || true
  wait "$api" 2>/dev/null || true
  fn="" api=""
  # name, arch, endpoint, what it answered, time from launch to the answer (and to its first poll).
  if ! python3 - "$f" "$arch" "$out/$f.result.json" "$launched" "$exited" <<'PY'
import json, os, sys
fn, arch, path, launched, exited = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
if not os.path.exists(path):
    print(f"{fn:<40} {arch:<8} {'-':<12} {exited or 'no answer'} before reaching the Runtime API")
    sys.exit(1)
with open(path) as f:
    r = json.load(f)
endpoint = r["endpoint"]
try:
    body = json.loads(r["body"]) if r["body"] else None
except ValueError:
    body = None
if endpoint == "/response" and isinstance(body, dict) and "statusCode" in body:
    what = f"HTTP {body['statusCode']}"
elif endpoint == "/response" and isinstance(body, dict) and "batchItemFailures" in body:
    what = f"{len(body['batchItemFailures'])} batch item failure(s)"
elif endpoint == "/response":
    what = "answered"
elif endpoint in ("timeout", "exited"):
    what = ("no answer in time" if endpoint == "timeout" else exited or "exited") + (
        " after init" if r["next_at"] else " during init")
else:  # the error's message (its type is often a Rust type name)
    what = str((body or {}).get("errorMessage") or (body or {}).get("errorType") or r.get("error_type") or "error")
    what = what if len(what) <= 28 else what[:27] + "…"
init = f", init {r['next_at'] - launched:.1f} s" if r["next_at"] else ""
reached = endpoint if endpoint.startswith("/") else "-"
print(f"{fn:<40} {arch:<8} {reached:<12} {what:<28} {r['done_at'] - launched:5.1f} s{init}")
sys.exit(0 if endpoint in ("/response", "/error") else 1)
PY
  then
    failed+=("$f")
  fi
done
echo "qemu proof: $count functions in $(( $(date +%s) - proof_start )) s"

if [ "${#failed[@]}" -gt 0 ]; then
  for f in "${failed[@]}"; do
    [ -f "$out/$f.log" ] || continue
    echo "--- $f (last lines of $out/$f.log)"; tail -20 "$out/$f.log"
    [ -f "$out/$f.result.json" ] && { echo "--- $f: what the Runtime API received"; cat "$out/$f.result.json"; echo; }
  done
  echo "arm64 proof failed for: ${failed[*]}" >&2
  exit 1
fi
echo "every arm64 bootstrap started on aarch64 and answered its invocation"
