"""moto's server (the AWS API emulator, from PyPI), with five repairs for many clients at once
and one for SQS's message size.

Started by scripts/emulator.sh in place of `moto_server`; takes the same arguments.

1. DynamoDB writes are atomic with respect to each other, as in DynamoDB. moto serves each
   request on its own thread and checks a write's condition, then writes, with nothing between:
   two conditional writes racing on one item could both pass. polis's optimistic concurrency
   (a process saved on `version = :expected`) depends on exactly that check.
2. A transaction backs up the items it touches, not its whole table. moto deep-copies every
   table a transaction names before it starts (O(items in the table) per transaction: 42 % of
   the emulator's time at 400 flows); the copy fails (HTTP 500, "dictionary changed size during
   iteration") when another client writes to the table meanwhile (204 times in that run); and a
   cancelled transaction puts the copy back, undoing every other client's writes made meanwhile.
3. SQS's approximate message counts are recounted at most once a second per queue. moto
   recounts every message of a queue whenever anything reads the queue's attributes, which each
   send does, and each receive once per message it looks at: O(queue depth) per send and
   O(depth²) per receive, 30 % of its time at 400 flows and 65 % at 1,000. AWS documents these
   counts as approximate (they may lag by a minute).
4. moto's list of its own service modules is read once. It lists its package folder (some 150
   `isdir` calls) on every request to find the service: 17 % of the SQS emulator's time.
5. No access-log line per request (errors are still logged).
6. SQS's message size as AWS has it: a queue that names no MaximumMessageSize takes 262,144
   bytes (moto's default is 1 MiB), and a message's size is its body in UTF-8 bytes (moto
   counts characters). A message over its queue's limit is refused, as SQS refuses it.

Each repair of moto's code checks the internals it replaces and refuses to start if they
changed: a moto upgrade (pinned in the Makefile) cannot silently undo or break one.
"""

import copy
import logging
import sys
import threading
import time

import moto.backends as backends
import moto.dynamodb.models as ddb
import moto.moto_server.werkzeug_app as werkzeug_app
import moto.sqs.models as sqs
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import main


def require(owner, *names):
    missing = [n for n in names if not hasattr(owner, n)]
    if missing:
        sys.exit(f"moto-server.py: {owner.__name__} has no {', '.join(missing)}: moto changed; review the repairs")


# 1. One lock for every DynamoDB write (re-entrant: a transaction's parts are writes too).
require(ddb.DynamoDBBackend, "put_item", "update_item", "delete_item", "transact_write_items")
WRITES = threading.RLock()


def serialised(write):
    def locked(*args, **kwargs):
        with WRITES:
            return write(*args, **kwargs)

    locked.__wrapped__ = write
    return locked


for name in ("put_item", "update_item", "delete_item"):
    setattr(ddb.DynamoDBBackend, name, serialised(getattr(ddb.DynamoDBBackend, name)))


# 2. moto's whole-table backup made an identity (its restore then puts back the table as it is),
#    and the touched items backed up and restored here instead.
require(ddb, "copy")


class TablesNotCopied:
    """The `copy` module, except that a table is not deep-copied."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


ddb.copy = TablesNotCopied()


def touched_key(backend, op_type, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None
    attrs = op.get("Item", {}) if op_type == "Put" else op.get("Key", {})
    if table.hash_key_attr not in attrs:
        return None
    hash_value = DynamoType(attrs[table.hash_key_attr])
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attrs:
            return None
        range_value = DynamoType(attrs[table.range_key_attr])
    return table, hash_value, range_value


def put_back(table, hash_value, range_value, item):
    if range_value is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
    elif item is None:
        table.items.get(hash_value, {}).pop(range_value, None)
    else:
        table.items[hash_value][range_value] = item


transact_write_items = ddb.DynamoDBBackend.transact_write_items


def transact_atomically(self, transact_items):
    with WRITES:
        before = []
        for entry in transact_items:
            for op_type, op in entry.items():
                key = touched_key(self, op_type, op)
                if key is not None:
                    table, hash_value, range_value = key
                    item = copy.deepcopy(table.get_item(hash_value, range_value))
                    before.append((table, hash_value, range_value, item))
        try:
            return transact_write_items(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(before):
                put_back(table, hash_value, range_value, item)
            raise


ddb.DynamoDBBackend.transact_write_items = transact_atomically


# 3. The approximate counts, recounted at most once a second.
COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)
require(sqs.Queue, *COUNTS)
RECOUNT_AFTER_S = 1.0


def recounted_now_and_then(name, count):
    def get(queue):
        cache = queue.__dict__.setdefault("_counted", {})
        now = time.monotonic()
        hit = cache.get(name)
        if hit is None or now - hit[0] >= RECOUNT_AFTER_S:
            hit = (now, count(queue))
            cache[name] = hit
        return hit[1]

    return property(get)


for name in COUNTS:
    setattr(sqs.Queue, name, recounted_now_and_then(name, getattr(sqs.Queue, name).fget))


# 4. The service modules, listed once.
require(backends, "list_of_moto_modules")
require(werkzeug_app, "backends")
MODULES = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: MODULES


# 5. Werkzeug logs each request at INFO, and an error on a request at ERROR.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


# 6. AWS's default message size, and sizes counted in bytes.
require(sqs.Queue, "__init__")
require(sqs.SQSBackend, "_validate_message")
require(sqs, "InvalidParameterValue")
AWS_DEFAULT_MAXIMUM_MESSAGE_SIZE = 262_144
queue_init = sqs.Queue.__init__


def queue_with_aws_default(self, name, region, account_id, **kwargs):
    kwargs.setdefault("MaximumMessageSize", AWS_DEFAULT_MAXIMUM_MESSAGE_SIZE)
    queue_init(self, name, region, account_id, **kwargs)


sqs.Queue.__init__ = queue_with_aws_default
validate_message = sqs.SQSBackend._validate_message


def validated_in_bytes(self, queue, message_body, *args, **kwargs):
    size = len(message_body.encode("utf-8"))
    if size > int(queue.maximum_message_size):
        raise sqs.InvalidParameterValue(
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{queue.maximum_message_size} bytes."
        )
    return validate_message(self, queue, message_body, *args, **kwargs)


sqs.SQSBackend._validate_message = validated_in_bytes


if __name__ == "__main__":
    sys.exit(main())
