"""A separate process that uses the store as a job process or the worker would, for tests
that need real processes on one SQLite file (``python -m tests.support.outbox_process``).

  write <dir> <worker> <count>   open, print "ready", wait for a line on stdin, then save
                                 <count> messages and <count> call records; print "done"
  save-one <dir>                 save one message, print "saved", then wait to be killed
  claim <dir> <now> <lease_s>    claim everything due, print the claimed item ids as JSON
                                 (after a line on stdin, so several claim at once)
  deliver <dir> <url> <timeout>  one delivery pass (the secret in WEBHOOK_SECRET), then
                                 print the report as JSON
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from delivery import Webhook, deliver_due
from store import Store
from tests.support.sample_records import T0, a_call, a_message


def main(argv: list[str]) -> None:
    command, data_dir = argv[0], Path(argv[1])
    store = Store.open(data_dir)
    if command == "write":
        worker, count = int(argv[2]), int(argv[3])
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(count):
            n = worker * 100_000 + i
            store.save_message(a_message(n, at=T0 + timedelta(seconds=i)))
            store.save_call(a_call(n, at=T0 + timedelta(seconds=i)))
        print("done", flush=True)
    elif command == "save-one":
        store.save_message(a_message(1))
        print("saved", flush=True)
        while True:
            time.sleep(60)
    elif command == "claim":
        now, lease = datetime.fromisoformat(argv[2]), timedelta(seconds=float(argv[3]))
        print("ready", flush=True)
        sys.stdin.readline()
        claimed: list[str] = []
        for _ in range(1000):  # bounded: a store that hands out items again must not hang
            claims = store.claim_due(now, lease, 3)
            if not claims:
                break
            claimed += [c.item_id for c in claims]
        print(json.dumps(claimed), flush=True)
    elif command == "deliver":
        webhook = Webhook(argv[2], os.environ["WEBHOOK_SECRET"], timeout_s=float(argv[3]))
        report = deliver_due(store, webhook)
        print(json.dumps({"delivered": report.delivered, "failed": report.failed}), flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
