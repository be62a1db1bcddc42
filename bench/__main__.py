"""`python -m bench` (`make bench`): one run of every target at every upstream delay.

For each upstream delay (0 ms, then 50 ms) a fresh fake upstream is started; then each target
in turn (direct, the three minimal relays, the daemon) is started, warmed with one request,
loaded at each concurrency (1, 16, 64) and stopped. The target under test is pinned to one core,
the upstream and the load generator to the other, so that they never compete with it.
A target that cannot start (the daemon before it lands) gets "not available (<why>)" rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Row, Timing, run_load
from bench.procs import NotReady
from bench.report import (
    Check,
    Memory,
    evaluate,
    format_cores,
    format_ratios,
    format_table,
    write_json,
)
from bench.targets import (
    ALL_TARGETS,
    RELAYS,
    Placement,
    Upstream,
    start_target,
    start_upstream,
)

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.5 s warm-up + 1.5 s measured")
    parser.add_argument("--duration", type=float, help="seconds measured per row (default 4)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each (default 1)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated targets: direct, relay (all three), daemon, or one of "
        + ", ".join(RELAYS),
    )
    parser.add_argument("--delays", default="0,50", help="upstream delays in ms")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--loadgen-procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    parser.add_argument("--stream", action="store_true", help='requests with "stream": true')
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def select_targets(only: str) -> list[str]:
    if not only:
        return list(ALL_TARGETS)
    wanted: set[str] = set()
    for name in (n.strip() for n in only.split(",") if n.strip()):
        if name == "relay":
            wanted.update(RELAYS)
        elif name in ALL_TARGETS:
            wanted.add(name)
        else:
            raise SystemExit(f"--only: unknown target {name!r}; known: relay, {ALL_TARGETS}")
    return [t for t in ALL_TARGETS if t in wanted]  # always in the same order


def placement(no_pin: bool) -> Placement:
    cores = sorted(os.sched_getaffinity(0))
    if no_pin or len(cores) < 2:
        return Placement(target=None, aux=None)
    return Placement(target={cores[0]}, aux={cores[1]})


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """What one run collected, in the order it was measured."""

    rows: list[Row] = field(default_factory=list)
    rss: dict[str, list[tuple[int | None, int | None]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # anything odd, printed after the table


@dataclass(frozen=True)
class Session:
    """The settings of one run, shared by every measurement."""

    targets: list[str]
    delays: list[float]
    levels: list[int]
    timing: Timing
    place: Placement
    loadgen_procs: int
    stream: bool
    workdir: Path  # sockets, the daemon's config, the load generators' results
    logs: Path

    def run(self) -> Outcome:
        out = Outcome()
        for delay in self.delays:
            upstream = start_upstream(delay, self.place, self.logs)
            try:
                for name in self.targets:
                    self.run_target(name, upstream, out)
            finally:
                upstream.child.stop()
        return out

    def run_target(self, name: str, upstream: Upstream, out: Outcome) -> None:
        delay = upstream.delay_ms
        try:
            running = start_target(name, upstream, self.place, self.workdir, self.logs)
        except (NotReady, OSError) as exc:
            progress(f"{name} {delay:g}ms: not available ({exc})")
            out.rows += [Row(name, delay, c, available=False, reason=str(exc)) for c in self.levels]
            return
        try:
            for c in self.levels:
                try:
                    row = run_load(
                        running, upstream, c, self.timing, self.place,
                        self.loadgen_procs, self.stream, self.workdir, self.logs,
                    )  # fmt: skip
                except RuntimeError as exc:  # the load generator failed: say so, go on
                    row = Row(name, delay, c, available=False, reason=str(exc))
                progress(_progress_line(row))
                out.rows.append(row)
        finally:
            if running.child is not None:
                peak = running.child.memory_kb("VmHWM")
                out.rss.setdefault(name, []).append((running.idle_rss_kb, peak))
            status = running.stop()
            # uvicorn re-raises the SIGTERM it handled once it has shut down: -15 is clean too.
            if status not in (None, 0, -signal.SIGTERM):  # -9: it would not stop, it was killed
                running.notes.append(f"exit status {status} after SIGTERM")
            out.notes += [f"{name} {delay:g}ms: {note}" for note in running.notes]


def run(args: argparse.Namespace) -> int:
    place = placement(args.no_pin)
    if place.aux:
        os.sched_setaffinity(0, place.aux)  # keep this process off the target's core too
    logs = RESULTS / "logs"
    shutil.rmtree(logs, ignore_errors=True)  # only this run's logs: stale ones would mislead
    timing = Timing(
        warmup=args.warmup if args.warmup is not None else 0.5 if args.quick else 1.0,
        duration=args.duration if args.duration is not None else 1.5 if args.quick else 4.0,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        session = Session(
            targets=select_targets(args.only),
            delays=[float(d) for d in args.delays.split(",")],
            levels=[int(c) for c in args.concurrency.split(",")],
            timing=timing,
            place=place,
            loadgen_procs=args.loadgen_procs,
            stream=args.stream,
            workdir=Path(tmp),
            logs=logs,
        )
        out = session.run()

    memory = {name: _memory(samples) for name, samples in out.rss.items()}
    verdicts: dict[str, list[Check]] = {
        t: evaluate(t, out.rows, memory.get(t)) for t in session.targets if t != "direct"
    }
    print()
    print(format_table(out.rows))
    print()
    print(format_ratios(verdicts, memory))
    print()
    print(format_cores(out.rows, sorted(place.aux or [])))
    for note in out.notes:
        print(f"NOTE: {note}")
    meta = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(time.monotonic() - started, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "target_cores": sorted(place.target or []),
        "aux_cores": sorted(place.aux or []),
        "warmup_s": timing.warmup,
        "duration_s": timing.duration,
        "loadgen_procs": args.loadgen_procs,
        "stream": args.stream,
        "notes": out.notes,
    }
    write_json(args.json, meta, out.rows, verdicts, memory)
    print(f"\nwritten to {args.json} in {meta['wall_s']} s; child logs in {logs}")
    return 0


def _progress_line(r: Row) -> str:
    if not r.available:
        return f"{r.target} {r.delay_ms:g}ms c={r.concurrency}: not available ({r.reason})"
    p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.3f}"
    p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.3f}"
    return (
        f"{r.target} {r.delay_ms:g}ms c={r.concurrency}: {r.rps:.0f} req/s, "
        f"p50 {p50} ms, p99 {p99} ms, errors {r.errors}"
        + "".join(f", {k} {v:.0f}%" for k, v in r.cpu_pct.items() if "." not in k)
    )


def _memory(samples: list[tuple[int | None, int | None]]) -> Memory:
    idle = [i for i, _ in samples if i is not None]
    peak = [p for _, p in samples if p is not None]
    return Memory(max(idle, default=None), max(peak, default=None))


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
