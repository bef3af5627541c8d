"""Run a vendor simulator from the command line until it times out or is interrupted.

    python -m airflow_provider_conversations.testing --vendor polyai --port 8931 --conversations 5000
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import timedelta

from airflow_provider_conversations.testing import SIMULATORS, simulator
from airflow_provider_conversations.testing.server import FAULT_KINDS, Faults


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m airflow_provider_conversations.testing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vendor", required=True, choices=sorted(SIMULATORS))
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--conversations", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--span-hours", type=float, default=72.0, help="data spread over this many hours")
    p.add_argument("--token", default="sim-token", help="the API key the simulator accepts")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this many seconds")
    p.add_argument("--max-requests", type=int, default=2_000_000, help="stop after this many requests")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every response, details too")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that get a random fault")
    p.add_argument("--fault-kinds", default=",".join(FAULT_KINDS))
    p.add_argument("--rate-limit", default=None, help="N/SECONDS, e.g. 100/60 (details count against it too)")
    p.add_argument("--vanish-share", type=float, default=0.0,
                   help="share of listed conversations whose detail answers 404 (gone since listing)")
    p.add_argument("--vanish-seed", type=int, default=0, help="which conversations vanish (deterministic)")
    p.add_argument("--conn-id", default=None, help="print the connection under this id")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a vendor-specific simulator switch (VALUE parsed as JSON when it can be), "
                   "e.g. --set environments='[\"live\"]' for PolyAI; repeatable")
    args = p.parse_args(argv)

    rate_limit = None
    if args.rate_limit:
        n, _, window = args.rate_limit.partition("/")
        rate_limit = (int(n), float(window or 60))
    faults = Faults(rate=args.fault_rate, kinds=tuple(k for k in args.fault_kinds.split(",") if k),
                    seed=args.seed)
    extra: dict[str, object] = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            extra[key] = json.loads(raw)
        except ValueError:
            extra[key] = raw
    sim = simulator(
        args.vendor, **extra, conversations=args.conversations, seed=args.seed, span=timedelta(hours=args.span_hours),
        token=args.token, port=args.port, max_seconds=args.max_seconds, max_requests=args.max_requests,
        latency_ms=args.latency_ms, faults=faults, rate_limit=rate_limit, log_requests=False,
        **({"vanish_share": args.vanish_share, "vanish_seed": args.vanish_seed} if args.vanish_share else {}),
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with sim:
        conn_id = args.conn_id or f"{args.vendor}_default"
        print(json.dumps({"vendor": args.vendor, "url": sim.url, "conversations": args.conversations,
                          "conn_id": conn_id, "connection": sim.connection(conn_id)}), flush=True)
        stopped.wait(args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
