"""The peer the bench compares a hook function with: what a bank's team would commonly
write instead, a Python hook on boto3 doing the same work per hook (check the secret,
read the body, a content id, DynamoDB's conditional put and SQS's FIFO send).

Run by the bench against the local stack's emulator, never by hand:

    boto3_hook.py TABLE QUEUE_URL SECRET_PARAMETER HOOKS

Prints one JSON line when ready (its clients made and its secret read from SSM, as our
function does before its first event), one when its first hook is answered, and one
with the CPU time per warm hook and the peak RSS. It leaves out what Lambda's Python
runtime would add (its own loop, event decoding): the comparison flatters the peer.
"""

import hashlib
import json
import resource
import sys
import time

import boto3

table, queue_url, secret_parameter, hooks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ssm = boto3.client("ssm")
dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")
secret = ssm.get_parameter(Name=secret_parameter, WithDecryption=True)["Parameter"]["Value"]
print(json.dumps({"ready": True}), flush=True)


def hook(scoring_id, headers, body):
    if headers.get("x-hook-secret") != secret:
        return 401
    payload = json.loads(body)
    if "insuranceCompany" not in payload:
        return 200
    hook_id = hashlib.sha256(f"{scoring_id}\napproved\n{body}".encode()).hexdigest()
    received = int(time.time() * 1000)
    item = {
        "pk": {"S": f"HOOK#{scoring_id}"},
        "sk": {"S": f"approved#{hook_id}"},
        "body": {"S": body},
        "receivedAtMs": {"N": str(received)},
    }
    try:
        dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    except dynamodb.exceptions.ConditionalCheckFailedException:
        pass
    message = {"message": "hook", "scoringId": scoring_id, "kind": "approved", "hookId": hook_id,
               "body": body, "receivedAtMs": received}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message), MessageGroupId=scoring_id,
                     MessageDeduplicationId=f"{hook_id}-{received}")
    return 200


body = '{"insuranceCompany":"ingostrah","writtenPremium":17847.29}'
headers = {"x-hook-secret": secret}
hook("peer-first", headers, body)
print(json.dumps({"first": True}), flush=True)
for i in range(20):
    hook(f"peer-warmup-{i}", headers, body)
cpu = time.process_time()
for i in range(hooks):
    hook(f"peer-{i}", headers, body)
cpu_ms = (time.process_time() - cpu) * 1000 / hooks
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cpu_ms_per_hook": cpu_ms, "peak_rss_mb": rss_mb}), flush=True)
