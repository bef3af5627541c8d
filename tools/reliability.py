"""Fault-injection runs: consecutive windows exported through faults, checked against the ground truth.

    python -m tools.reliability                 # the CI scale, one seed
    python -m tools.reliability --scale full    # what `make reliability` runs

A run starts one vendor's simulator with random faults (``Faults(rate=..., kinds=..., seed=..., burst=...)``)
and churn (conversations inserted and updated while walks run), exports ``windows`` consecutive one-hour
windows with :class:`ConversationsToObjectStorageOperator` to ``file://`` objects, one task run per window
as a scheduler would, and compares what was written with the simulator's ground truth: per window, and the
union over all windows (duplicates, missing, unexpected). The result is one row of the markdown table
:func:`markdown` prints.

Ground truth: the ids whose creation time lies in the window, taken when the window's walk starts. Churn
never changes it: inserted conversations are created at an instant after every window of the run, and
updates change status and update time, never the creation time (the runner checks this at the end).

Fault kinds (``testing.server``): ``429`` with ``Retry-After`` in seconds, ``429-date`` (an HTTP date),
``429-none`` (no header), ``500``/``502``/``503`` in bursts of ``burst`` consecutive requests, ``reset``
(connection reset mid-body), ``slow`` (an answer slower than the read timeout), ``truncated`` and ``garbage``
(status 200 with half a JSON body or an HTML page), and ``empty`` (a page without conversations that still
announces more, with a fresh cursor at the same position) for the cursor APIs: ElevenLabs, Replyful and
PolyAI v3. PolyAI v1 answers an empty page with the same ``next_offset``, which must fail (see the tests),
and for Anyreach and ParrotMob a short page is the end of the list by the API's contract.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from airflow_provider_conversations.testing import simulator
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.server import Churn, Faults

#: Relative weights of the generic fault kinds. An HTTP-date ``Retry-After`` has whole-second granularity
#: (each costs up to a second of waiting), so it is drawn a third as often as the others; ``slow`` costs a
#: read timeout each.
GENERIC_WEIGHTS: dict[str, int] = {
    "429": 3, "429-date": 1, "429-none": 3, "500": 3, "502": 3, "503": 3,
    "reset": 3, "slow": 2, "truncated": 3, "garbage": 3,
}
#: An empty page in the middle of a walk, for the APIs where it is a legal answer.
EMPTY_WEIGHT = {"empty": 3}


@dataclass(frozen=True)
class Profile:
    """How one vendor (or API version) is run: simulator switches, connection, page size and fault kinds."""

    name: str
    vendor: str
    weights: dict[str, int]
    page_size: int = 5
    connection: dict[str, Any] = field(default_factory=dict)
    simulator: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    #: Export with ``include_details=True``: every record must carry its own detail and a non-empty transcript.
    details: bool = False

    def kinds(self) -> tuple[str, ...]:
        """The fault kinds, each repeated by its weight (``Faults`` draws uniformly from the tuple)."""
        return tuple(kind for kind, weight in self.weights.items() for _ in range(weight))


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("parrotmob", "parrotmob", GENERIC_WEIGHTS,
            note="no server-side time filter: each window seeks down from the newest conversation (one-item "
                 "probes), and inserts at the top shift the offset pages under the walk"),
    Profile("anyreach", "anyreach", GENERIC_WEIGHTS,
            note="timestamp cursor without tie-breaker (one probe per walk learns the comparison)"),
    Profile("polyai", "polyai", {**GENERIC_WEIGHTS, **EMPTY_WEIGHT}, simulator={"environments": ["live"]},
            note="v3 cursor paging"),
    Profile("polyai-v1", "polyai", GENERIC_WEIGHTS, connection={"api_version": "v1"},
            simulator={"environments": ["live"]}, note="v1 offset paging (next_offset)"),
    Profile("elevenlabs", "elevenlabs", {**GENERIC_WEIGHTS, **EMPTY_WEIGHT}, note="newest-first keyset cursor"),
    Profile("replyful", "replyful", {**GENERIC_WEIGHTS, **EMPTY_WEIGHT}, note="ascending keyset cursor"),
    # The same walks with every conversation's detail fetched by the bounded pool (faults hit details too).
    Profile("elevenlabs-details", "elevenlabs", GENERIC_WEIGHTS, details=True,
            note="include_details: GET /v1/convai/conversations/{id} per conversation (transcript)"),
    Profile("replyful-details", "replyful", GENERIC_WEIGHTS, details=True,
            note="include_details: GET /v1/conversations/{id} per conversation (messages)"),
    Profile("anyreach-details", "anyreach", GENERIC_WEIGHTS, details=True,
            note="include_details: GET /core/conversations/{id} per conversation (conversation)"),
    Profile("polyai-details", "polyai", GENERIC_WEIGHTS, details=True, simulator={"environments": ["live"]},
            note="include_details: the list items' turns (no extra request)"),
)}


@dataclass(frozen=True)
class Scale:
    """Sizes and rates of a set of runs (``--scale``); every field can be overridden on the command line."""

    windows: int
    per_window: int
    rate: float
    seeds: tuple[int, ...]
    burst: int = 3
    inserts: float = 0.05
    updates: float = 0.05
    read_timeout: float = 0.3
    jobs: int = 1


SCALES: dict[str, Scale] = {
    # What tests/test_reliability.py runs for every profile (a few seconds each on 2 cores).
    "ci": Scale(windows=50, per_window=12, rate=0.10, seeds=(7,)),
    # `make reliability`: 200 windows and 5,000 conversations per run, three seeds, a run per core (2 to 6).
    "full": Scale(windows=200, per_window=25, rate=0.15, seeds=(1, 2, 3), jobs=max(2, min(6, os.cpu_count() or 2))),
}


@dataclass
class Result:
    """One run: what was injected, what it cost, and whether the export was exact."""

    profile: str
    vendor: str
    seed: int
    windows: int
    conversations: int
    requests: int
    faults: dict[str, int]
    bursts: int
    inserted: int
    updated: int
    retries: int
    wait_seconds: float
    repeats_dropped: int
    exported: int
    truth: int
    duplicates: int
    missing: int
    unexpected: int
    misplaced: int
    seconds: float
    #: With details: records checked, and records whose detail was missing, another conversation's, or
    #: without a transcript.
    details_checked: int = 0
    details_wrong: int = 0
    #: Details answered 404 (Replyful's archived conversations): a mangling fault on such an answer (reset,
    #: truncated, garbage) keeps its 404 status, which is final, so it costs no retry.
    details_missing: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def faulted(self) -> int:
        return sum(self.faults.values())

    @property
    def fault_share(self) -> float:
        return self.faulted / self.requests if self.requests else 0.0

    @property
    def exact(self) -> bool:
        return (self.exported == self.truth and not self.duplicates and not self.missing and not self.unexpected
                and not self.misplaced and not self.details_wrong)

    def summary(self) -> str:
        """One line for a log or a test report."""
        return (f"{self.profile} seed={self.seed}: {self.windows} windows, {self.requests} requests, "
                f"{self.faulted} faults ({self.fault_share:.1%}; {format_faults(self.faults)}; {self.bursts} "
                f"bursts), {self.inserted} inserted / {self.updated} updated during walks, "
                f"{self.repeats_dropped} repeats dropped, {self.retries} "
                f"retries waiting {self.wait_seconds:.2f} s, exported {self.exported} / truth {self.truth}, "
                f"{self.duplicates} duplicates, {self.missing} missing, {self.unexpected} unexpected, "
                f"{self.misplaced} in the wrong window"
                + (f", {self.details_checked} details checked, {self.details_wrong} wrong" if self.details_checked
                   else "")
                + f": {'EXACT' if self.exact else 'NOT EXACT'} "
                f"({self.seconds:.1f} s)")


def derive(seed: int, *parts: str) -> int:
    """A seed of its own for each profile and purpose, so vendors do not all draw the same fault sequence."""
    return zlib.crc32(":".join((str(seed), *parts)).encode())


@contextlib.contextmanager
def _connection_env(conn_id: str, conn: dict[str, Any]) -> Iterator[None]:
    """``AIRFLOW_CONN_<ID>`` for the duration of a run, restored afterwards."""
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    previous = os.environ.get(key)
    os.environ[key] = json.dumps(conn)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def _read_records(uri: str) -> list[dict[str, Any]]:
    path = Path(uri.removeprefix("file://"))
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _wrong_details(hook: Any, sim: Any, records: list[dict[str, Any]]) -> list[str]:
    """Ids of records whose detail is not the simulator's: missing although the simulator has it (or present
    although it answers 404, e.g. Replyful's archived conversations), another conversation's, or without a
    transcript. (Churn may update a conversation after its detail was read: ids and presence are compared.)"""
    endpoint = hook.detail_endpoint
    wrong = []
    for r in records:
        cid = str(r[hook.id_field])
        truth = sim.detail(cid)
        detail = r.get("detail") if endpoint is not None else r
        if truth is None and endpoint is not None:
            if detail is not None:
                wrong.append(cid)
            continue
        if (not isinstance(detail, dict) or (endpoint is not None and str(detail.get(endpoint.id_field)) != cid)
                or not hook.messages_of(r)):
            wrong.append(cid)
    return wrong


def run(
    profile: str | Profile,
    *,
    seed: int,
    windows: int = 50,
    per_window: int = 12,
    rate: float = 0.10,
    burst: int = 3,
    kinds: Sequence[str] | None = None,
    inserts: float = 0.05,
    updates: float = 0.05,
    read_timeout: float = 0.3,
    page_size: int | None = None,
    destination: Path | None = None,
) -> Result:
    """Export ``windows`` consecutive one-hour windows of ``profile`` through random faults; compare.

    ``seed`` picks the data set; the fault and churn sequences get seeds derived from it and the profile
    name. ``kinds`` overrides the profile's weighted fault kinds (each kind is also injected once on one of
    the first requests). ``read_timeout`` is the hook's read timeout; a
    ``slow`` answer comes after twice that. Objects go to ``destination`` (default: a temporary directory,
    removed afterwards).
    """
    from airflow_provider_conversations.hooks import hook_class
    from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

    prof = PROFILES[profile] if isinstance(profile, str) else profile
    id_field = hook_class(prof.vendor).id_field
    checker = hook_class(prof.vendor)() if prof.details else None
    hour = timedelta(hours=1)
    span = hour * windows
    conversations = windows * per_window
    drawn = tuple(kinds) if kinds else prof.kinds()
    # Every kind once, early (one every third request), so even a short run meets each; then random faults.
    first = {3 * (i + 1): kind for i, kind in enumerate(dict.fromkeys(drawn))}
    faults = Faults(schedule=first, rate=rate, kinds=drawn, seed=derive(seed, prof.name, "faults"), burst=burst,
                    retry_after="0.02", slow_seconds=2 * read_timeout)
    churn = Churn(present=DEFAULT_START + span + timedelta(days=1), inserts=inserts, updates=updates,
                  seed=derive(seed, prof.name, "churn"))
    # Fast back-off (the waits are not what is tested) and a generous attempt budget: with a fifth of requests
    # failing, and 5xx in bursts, the hook's default of 6 attempts would now and then run out over tens of
    # thousands of requests; running out is tested on its own (tests/test_reliability.py).
    hook_params = {"max_attempts": 20, "backoff": 0.001, "backoff_max": 0.01, "timeout": (5.0, read_timeout)}
    conn_id = f"reliability_{prof.name.replace('-', '_')}"
    sim = simulator(prof.vendor, **prof.simulator, conversations=conversations, seed=seed, span=span,
                    faults=faults, churn=churn, log_requests=False, max_seconds=24 * 3600)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        out = destination or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reliability-")))
        stack.enter_context(sim)
        stack.enter_context(_connection_env(conn_id, sim.connection(conn_id, **prof.connection)))
        exported: list[str] = []
        truths: list[list[str]] = []
        misplaced: list[str] = []
        wrong: list[str] = []
        retries = repeats = checked = gone = 0
        wait = 0.0
        for i in range(windows):
            start, end = DEFAULT_START + i * hour, DEFAULT_START + (i + 1) * hour
            truth = sim.ground_truth(start, end)  # when the window's walk starts
            op = ConversationsToObjectStorageOperator(
                task_id=f"export_{prof.name.replace('-', '_')}", conn_id=conn_id, vendor=prof.vendor,
                destination=f"{out.as_uri()}/", start=start, end=end, page_size=page_size or prof.page_size,
                hook_params=hook_params, include_details=prof.details,
            )
            manifest = op.execute({})
            records = _read_records(manifest["uri"])
            got = [str(r[id_field]) for r in records]
            if checker is not None:
                checked += len(records)
                gone += manifest["details_missing"]
                wrong.extend(_wrong_details(checker, sim, records))
            exported.extend(got)
            truths.append(truth)
            misplaced.extend(sorted(set(got) - set(truth)))
            retries += manifest["retries"]
            repeats += manifest["duplicates"]
            wait += manifest["retry_wait_seconds"] + manifest["throttle_wait_seconds"]
        everything = [i for t in truths for i in t]
        if sorted(sim.ground_truth(DEFAULT_START, DEFAULT_START + span)) != sorted(everything):
            raise RuntimeError(f"{prof.name}: the ground truth moved during the run (churn landed in a window)")
        requests, by_kind = sim.stats.requests, dict(sorted(sim.stats.faults.items()))
    truth_set, exported_set = set(everything), set(exported)
    counts = Counter(exported)
    duplicated = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(truth_set - exported_set)
    unexpected = sorted(exported_set - truth_set)
    return Result(
        profile=prof.name, vendor=prof.vendor, seed=seed, windows=windows, conversations=conversations,
        requests=requests, faults=by_kind, bursts=faults.bursts, inserted=churn.inserted, updated=churn.updated,
        retries=retries, wait_seconds=round(wait, 3), repeats_dropped=repeats, exported=len(exported),
        truth=len(everything), duplicates=sum(n - 1 for n in counts.values() if n > 1), missing=len(missing),
        unexpected=len(unexpected), misplaced=len(set(misplaced) - set(unexpected)),
        seconds=round(time.monotonic() - started, 2), details_checked=checked, details_wrong=len(wrong),
        details_missing=gone,
        examples={k: v[:5] for k, v in (("duplicates", duplicated), ("missing", missing),
                                        ("unexpected", unexpected), ("misplaced", misplaced),
                                        ("wrong details", wrong)) if v},
    )


# ---------------------------------------------------------------------- the table


def format_faults(faults: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {n}" for kind, n in faults.items()) or "none"


COLUMNS = ("vendor", "seed", "windows", "conversations", "requests", "faults", "faults by kind", "inserted / updated",
           "repeats dropped", "retries", "wait s", "exported", "truth", "duplicates", "missing", "exact", "seconds")


def markdown(results: Sequence[Result]) -> str:
    """The reliability table, as the README shows it."""
    rows = [
        (r.profile, str(r.seed), str(r.windows), f"{r.conversations:,}", f"{r.requests:,}",
         f"{r.faulted:,} ({r.fault_share:.1%})", f"{format_faults(r.faults)} ({r.bursts} bursts of 5xx)",
         f"{r.inserted} / {r.updated}", str(r.repeats_dropped), f"{r.retries:,}", f"{r.wait_seconds:.1f}",
         f"{r.exported:,}", f"{r.truth:,}", str(r.duplicates), str(r.missing), "yes" if r.exact else "**NO**",
         f"{r.seconds:.1f}")
        for r in results
    ]
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c not in ("vendor", "faults by kind", "exact") else "---" for c in COLUMNS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


SUMMARY_COLUMNS = ("vendor", "seeds", "windows", "conversations", "requests", "faulty requests", "retries", "wait s",
                   "inserted / updated", "exported", "truth", "duplicates", "missing", "exact")


def summary_markdown(results: Sequence[Result]) -> str:
    """One row per vendor (profile) over all its seeds: the short table for the README."""
    by_profile: dict[str, list[Result]] = {}
    for r in results:
        by_profile.setdefault(r.profile, []).append(r)
    rows = []
    for name, runs in by_profile.items():
        requests, faulted = sum(r.requests for r in runs), sum(r.faulted for r in runs)
        rows.append((
            name, ", ".join(str(r.seed) for r in runs), f"{sum(r.windows for r in runs):,}",
            f"{sum(r.conversations for r in runs):,}", f"{requests:,}",
            f"{faulted:,} ({faulted / requests if requests else 0:.1%})", f"{sum(r.retries for r in runs):,}",
            f"{sum(r.wait_seconds for r in runs):.1f}",
            f"{sum(r.inserted for r in runs):,} / {sum(r.updated for r in runs):,}",
            f"{sum(r.exported for r in runs):,}", f"{sum(r.truth for r in runs):,}",
            str(sum(r.duplicates for r in runs)), str(sum(r.missing for r in runs)),
            "yes" if all(r.exact for r in runs) else "**NO**",
        ))
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |",
             "|" + "|".join("---" if c in ("vendor", "seeds", "exact") else "---:" for c in SUMMARY_COLUMNS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------- command line


def _run_one(args: tuple[str, int, dict[str, Any]]) -> Result | str:
    """A run's result, or what stopped it (so one failed run does not hide the others' rows)."""
    name, seed, options = args
    try:
        return run(name, seed=seed, **options)
    except Exception as exc:
        return f"{name} seed={seed}: FAILED: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.reliability",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="profiles:\n" + "\n".join(f"  {n:<11} {pr.note}" for n, pr in PROFILES.items()))
    p.add_argument("--scale", choices=sorted(SCALES), default="ci",
                   help="ci: 50 windows x 12 conversations, 10%% faults, seed 7 (what the tests run); full: 200 "
                   "windows x 25 conversations, 15%% faults, seeds 1, 2, 3 (make reliability)")
    p.add_argument("--profiles", default=",".join(PROFILES),
                   help=f"comma-separated, from: {', '.join(PROFILES)} (default: all)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (overrides the scale's)")
    p.add_argument("--windows", type=int, default=None, help="consecutive one-hour windows per run")
    p.add_argument("--per-window", type=int, default=None, help="conversations per window, on average")
    p.add_argument("--rate", type=float, default=None, help="share of requests that draw a random fault")
    p.add_argument("--burst", type=int, default=None, help="consecutive requests a drawn 5xx lasts")
    p.add_argument("--inserts", type=float, default=None, help="chance per request of an insert during walks")
    p.add_argument("--updates", type=float, default=None, help="chance per request of an update during walks")
    p.add_argument("--read-timeout", type=float, default=None, help="hook read timeout; slow answers take 2x")
    p.add_argument("--jobs", type=int, default=None, help="runs in parallel (separate processes)")
    p.add_argument("--output", type=Path, default=None, help="also write the markdown table (and JSON) here")
    a = p.parse_args(argv)

    unknown = [n for n in a.profiles.split(",") if n and n not in PROFILES]
    if unknown:
        p.error(f"unknown profiles {unknown}; allowed: {', '.join(PROFILES)}")
    scale = SCALES[a.scale]
    overrides = {k: v for k, v in (("windows", a.windows), ("per_window", a.per_window), ("rate", a.rate),
                                   ("burst", a.burst), ("inserts", a.inserts), ("updates", a.updates),
                                   ("read_timeout", a.read_timeout), ("jobs", a.jobs)) if v is not None}
    if a.seeds:
        overrides["seeds"] = tuple(int(s) for s in a.seeds.split(","))
    scale = replace(scale, **overrides)
    # A scratch Airflow home, and task logs (a line per page and per retry, which would drown the table) at
    # errors only; the workers inherit both.
    defaults = {"AIRFLOW_HOME": "", "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    added = {k: v for k, v in defaults.items() if k not in os.environ}
    if "AIRFLOW_HOME" in added:
        added["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="reliability-airflow-home-")
    os.environ.update(added)
    try:
        return _main(a, scale)
    finally:
        for key in added:
            os.environ.pop(key, None)
        if "AIRFLOW_HOME" in added:
            shutil.rmtree(added["AIRFLOW_HOME"], ignore_errors=True)


def _main(a: argparse.Namespace, scale: Scale) -> int:
    options = {"windows": scale.windows, "per_window": scale.per_window, "rate": scale.rate, "burst": scale.burst,
               "inserts": scale.inserts, "updates": scale.updates, "read_timeout": scale.read_timeout}
    jobs = [(name, seed, options) for seed in scale.seeds for name in a.profiles.split(",") if name]
    print(f"Fault-injection runs ({a.scale} scale): {len(jobs)} runs of {scale.windows} one-hour windows, "
          f"{scale.windows * scale.per_window:,} conversations each, faults on {scale.rate:.0%} of requests "
          f"(5xx in bursts of {scale.burst}), inserts/updates on {scale.inserts:.0%}/{scale.updates:.0%} of "
          f"requests, seeds {', '.join(map(str, scale.seeds))}, {scale.jobs} in parallel", flush=True)
    started = time.monotonic()
    results: list[Result] = []
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        if scale.jobs > 1:
            pool = stack.enter_context(ProcessPoolExecutor(scale.jobs, mp_context=get_context("spawn")))
            outcomes: Iterator[Result | str] = pool.map(_run_one, jobs)
        else:
            outcomes = map(_run_one, jobs)
        for outcome in outcomes:
            if isinstance(outcome, str):
                failures.append(outcome)
                print(outcome, flush=True)
            else:
                results.append(outcome)
                print(outcome.summary(), flush=True)
    wall = time.monotonic() - started
    table = markdown(results)
    summary = summary_markdown(results)
    exact = not failures and all(r.exact for r in results)
    print()
    print(table)
    print()
    print("Per vendor, all seeds:")
    print()
    print(summary)
    print()
    print(f"{sum(r.windows for r in results):,} windows, {sum(r.requests for r in results):,} requests, "
          f"{sum(r.faulted for r in results):,} faults, {sum(r.retries for r in results):,} retries: "
          + ("every export exact, no duplicates" if exact else
             f"SOME RUNS FAILED OR WERE NOT EXACT ({len(failures)} failed)")
          + f" (wall time {wall:.0f} s)")
    if a.output:
        a.output.write_text(f"{summary}\n\n{table}\n")
        a.output.with_suffix(".json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
