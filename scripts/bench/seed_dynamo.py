#!/usr/bin/env python3
"""Seed N generated grants into the DynamoDB table of adapter-lambda's
DynamoStore (for the scale benchmark in scripts/bench.sh), with
BatchWriteItem (25 items a call) from a few threads. Per grant, the three
items a real grant with one access token has, in the core's key shapes and
the store's single-table layout (pk = the key's first two segments, sk = the
whole key): grant/{32 hex}, token/{32 hex}/{64 hex}, user/{b64url}/{32 hex}.
Values are placeholders of typical sizes: nothing reads a seeded item.

    seed_dynamo.py TABLE N      (endpoint, region, credentials from AWS_* variables)

Prints the number of items written on its last line.
"""
import base64
import hashlib
import os
import sys
import threading
import time

import boto3

THREADS = 4


def items(i, exp):
    gid = hashlib.md5(f"bench-grant-{i}".encode()).hexdigest()
    tok = hashlib.sha256(f"bench-token-{i}".encode()).hexdigest()
    user = base64.urlsafe_b64encode(f"bench-user-{i % 100000}".encode()).rstrip(b"=").decode()
    for key, size in ((f"grant/{gid}", 800), (f"token/{gid}/{tok}", 500), (f"user/{user}/{gid}", 60)):
        pk = "/".join(key.split("/")[:2])
        yield {
            "pk": {"S": pk},
            "sk": {"S": key},
            "v": {"B": bytes(size)},
            "rev": {"N": "1"},
            "exp": {"N": str(exp)},
            "ttl": {"N": str(exp + 3600)},
        }


def worker(table, lo, hi, counter, lock, errors):
    try:
        fill(table, lo, hi, counter, lock)
    except Exception as e:  # reported by main, which then fails
        errors.append(repr(e))


def fill(table, lo, hi, counter, lock):
    client = boto3.client(
        "dynamodb",
        endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    exp = int(time.time()) + 30 * 86400
    batch = []

    def flush():
        pending = {table: [{"PutRequest": {"Item": it}} for it in batch]}
        while pending:
            resp = client.batch_write_item(RequestItems=pending)
            pending = resp.get("UnprocessedItems") or {}
        with lock:
            counter[0] += len(batch)
        batch.clear()

    for i in range(lo, hi):
        for it in items(i, exp):
            batch.append(it)
            if len(batch) == 25:
                flush()
    if batch:
        flush()


def main():
    table, n = sys.argv[1], int(sys.argv[2])
    counter, lock, errors = [0], threading.Lock(), []
    step = (n + THREADS - 1) // THREADS
    threads = [
        threading.Thread(target=worker, args=(table, k * step, min(n, (k + 1) * step), counter, lock, errors))
        for k in range(THREADS)
    ]
    started = time.time()
    for t in threads:
        t.start()
    last = 0
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        if counter[0] - last > 0:
            print(f"{counter[0]} items, {counter[0] / (time.time() - started):.0f}/s", flush=True)
            last = counter[0]
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"seeding failed: {errors[0]}")
    print(counter[0])


if __name__ == "__main__":
    main()
