"""`python -m bench` (`make bench`): one run of every target at every upstream delay, then the
streaming case.

Plain phase: for each upstream delay (0 ms, then 50 ms) a fresh fake upstream is started; then
each target in turn (direct, the three minimal relays, the daemon) is started, warmed with one
request, loaded at each concurrency (1, 16, 64) and stopped.

Stream phase: one more fresh upstream at 0 ms, and direct, relay-aiohttp and the daemon (any
target named with --only) loaded at c=16 with `"stream": true` requests; the upstream answers
each with 50 chat.completion.chunk events then `data: [DONE]`. Per target: streams/s, chunks/s,
time to the first token (TTFT: request sent -> arrival of the first event whose
choices[0].delta.content is non-empty) and the whole stream's time; then chunks/s against the
minimal aiohttp relay's and the TTFT added to direct's. `--stream` runs only this phase,
`--no-stream` skips it.

Cluster phase (bench/cluster.py): `--workers 2` against `--workers 1`, and the p50 cluster mode
adds to a single daemon at c=1, on a loopback redis-server. `--cluster` runs only this phase,
`--no-cluster` skips it.

The target under test is pinned to one core, the upstream and the load generator to the other,
so that they never compete with it. A target that cannot start (the daemon before it lands)
gets "not available (<why>)" rows.
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

from bench.cluster import run_cluster_phase
from bench.measure import Row, Timing, run_load
from bench.procs import NotReady
from bench.report import (
    REFERENCE_RELAY,
    Check,
    Memory,
    evaluate,
    evaluate_stream,
    format_cores,
    format_ratios,
    format_stream_table,
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
from bench.upstream import STREAM_CHUNKS

RESULTS = Path(__file__).resolve().parent / "results"
STREAM_TARGETS = ("direct", REFERENCE_RELAY, "daemon")  # the stream phase's, without --only


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.5 s warm-up + 1.5 s measured")
    parser.add_argument("--duration", type=float, help="seconds measured per row (default 4)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each (default 1)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated targets: direct, relay (all three), daemon, or one of "
        + ", ".join(RELAYS)
        + f" (both phases; without it the stream phase runs {', '.join(STREAM_TARGETS)})",
    )
    parser.add_argument("--delays", default="0,50", help="upstream delays in ms (plain phase)")
    parser.add_argument("--concurrency", default="1,16,64", help="plain phase")
    parser.add_argument("--loadgen-procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    phases = parser.add_mutually_exclusive_group()
    phases.add_argument(
        "--stream", action="store_true", help='only the stream phase ("stream": true requests)'
    )
    phases.add_argument("--no-stream", action="store_true", help="skip the stream phase")
    phases.add_argument(
        "--cluster", action="store_true", help="only the cluster phase (see bench/cluster.py)"
    )
    parser.add_argument("--no-cluster", action="store_true", help="skip the cluster phase")
    parser.add_argument(
        "--stream-duration", type=float, help="seconds measured per stream row (default 3)"
    )
    parser.add_argument("--stream-concurrency", default="16", help="stream phase")
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def select_targets(only: str, default: tuple[str, ...] = ALL_TARGETS) -> list[str]:
    if not only:
        return list(default)
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
    stream_rows: list[Row] = field(default_factory=list)
    # (idle, peak) kB per start of a target, plain phase; the stream phase's apart
    rss: dict[str, list[tuple[int | None, int | None]]] = field(default_factory=dict)
    stream_rss: dict[str, list[tuple[int | None, int | None]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # anything odd, printed after the table


@dataclass(frozen=True)
class Phase:
    """What one phase loads: which targets, at which concurrencies, for how long."""

    targets: list[str]
    levels: list[int]
    timing: Timing
    stream: bool


@dataclass(frozen=True)
class Session:
    """The settings of one run, shared by every measurement."""

    plain: Phase | None  # None: skipped
    delays: list[float]
    streamed: Phase | None  # at 0 ms upstream; None: skipped
    place: Placement
    loadgen_procs: int
    workdir: Path  # sockets, the daemon's config, the load generators' results
    logs: Path

    def run(self) -> Outcome:
        out = Outcome()
        if self.plain is not None:
            for delay in self.delays:
                self.run_phase(self.plain, delay, out.rows, out)
        if self.streamed is not None:
            self.run_phase(self.streamed, 0.0, out.stream_rows, out)
        return out

    def run_phase(self, phase: Phase, delay: float, rows: list[Row], out: Outcome) -> None:
        upstream = start_upstream(delay, self.place, self.logs)
        try:
            for name in phase.targets:
                self.run_target(name, upstream, phase, rows, out)
        finally:
            upstream.child.stop()

    def run_target(
        self, name: str, upstream: Upstream, phase: Phase, rows: list[Row], out: Outcome
    ) -> None:
        delay = upstream.delay_ms
        label = f"{name} {delay:g}ms" + (" stream" if phase.stream else "")
        try:
            running = start_target(
                name, upstream, self.place, self.workdir, self.logs, stream=phase.stream
            )
        except (NotReady, OSError) as exc:
            progress(f"{label}: not available ({exc})")
            rows += [
                Row(name, delay, c, available=False, reason=str(exc), stream=phase.stream)
                for c in phase.levels
            ]
            return
        try:
            for c in phase.levels:
                try:
                    row = run_load(
                        running, upstream, c, phase.timing, self.place,
                        self.loadgen_procs, phase.stream, self.workdir, self.logs,
                    )  # fmt: skip
                except RuntimeError as exc:  # the load generator failed: say so, go on
                    row = Row(name, delay, c, available=False, reason=str(exc))
                    row.stream = phase.stream
                progress(_progress_line(row))
                rows.append(row)
        finally:
            if running.child is not None:
                peak = running.child.memory_kb("VmHWM")
                rss = out.stream_rss if phase.stream else out.rss
                rss.setdefault(name, []).append((running.idle_rss_kb, peak))
            status = running.stop()
            # uvicorn re-raises the SIGTERM it handled once it has shut down: -15 is clean too.
            if status not in (None, 0, -signal.SIGTERM):  # -9: it would not stop, it was killed
                running.notes.append(f"exit status {status} after SIGTERM")
            out.notes += [f"{label}: {note}" for note in running.notes]


def run(args: argparse.Namespace) -> int:
    place = placement(args.no_pin)
    if place.aux:
        os.sched_setaffinity(0, place.aux)  # keep this process off the target's core too
    logs = RESULTS / "logs"
    shutil.rmtree(logs, ignore_errors=True)  # only this run's logs: stale ones would mislead
    warmup = args.warmup if args.warmup is not None else 0.5 if args.quick else 1.0
    timing = Timing(
        warmup=warmup,
        duration=args.duration if args.duration is not None else 1.5 if args.quick else 4.0,
    )
    stream_timing = Timing(
        warmup=warmup,
        duration=args.stream_duration
        if args.stream_duration is not None
        else 1.5
        if args.quick
        else 3.0,
    )
    plain = Phase(
        targets=select_targets(args.only),
        levels=[int(c) for c in args.concurrency.split(",")],
        timing=timing,
        stream=False,
    )
    streamed = Phase(
        targets=select_targets(args.only, STREAM_TARGETS),
        levels=[int(c) for c in args.stream_concurrency.split(",")],
        timing=stream_timing,
        stream=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        session = Session(
            plain=None if args.stream or args.cluster else plain,
            delays=[float(d) for d in args.delays.split(",")],
            streamed=None if args.no_stream or args.cluster else streamed,
            place=place,
            loadgen_procs=args.loadgen_procs,
            workdir=Path(tmp),
            logs=logs,
        )
        out = session.run()
        cluster_lines = (
            []
            if args.no_cluster
            else run_cluster_phase(timing, Path(tmp), logs, args.loadgen_procs)
        )

    memory = {name: _memory(samples) for name, samples in out.rss.items()}
    stream_memory = {name: _memory(samples) for name, samples in out.stream_rss.items()}
    verdicts: dict[str, list[Check]] = {}
    stream_verdicts: dict[str, list[Check]] = {}
    if session.plain is not None:
        verdicts = {
            t: evaluate(t, out.rows, memory.get(t)) for t in session.plain.targets if t != "direct"
        }
        print()
        print(format_table(out.rows))
        print()
        print(format_ratios(verdicts, memory))
    if session.streamed is not None:
        stream_verdicts = {
            t: evaluate_stream(t, out.stream_rows, STREAM_CHUNKS)
            for t in session.streamed.targets
            if t != "direct"
        }
        print()
        print(format_stream_table(out.stream_rows))
        print()
        print(format_ratios(stream_verdicts, stream_memory, "stream ratios (same run)"))
    print()
    print(format_cores(out.rows + out.stream_rows, sorted(place.aux or [])))
    for note in out.notes:
        print(f"NOTE: {note}")
    if cluster_lines:
        print()
        print("\n".join(cluster_lines))
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
        "stream_duration_s": stream_timing.duration,
        "stream_chunks": STREAM_CHUNKS,
        "loadgen_procs": args.loadgen_procs,
        "phases": [p for p, on in (("plain", session.plain), ("stream", session.streamed)) if on],
        "notes": out.notes,
        "cluster": cluster_lines,
    }
    write_json(
        args.json, meta, out.rows, verdicts, memory,
        out.stream_rows, stream_verdicts, stream_memory,
    )  # fmt: skip
    print(f"\nwritten to {args.json} in {meta['wall_s']} s; child logs in {logs}")
    return 0


def _progress_line(r: Row) -> str:
    where = f"{r.target} {r.delay_ms:g}ms c={r.concurrency}" + (" stream" if r.stream else "")
    if not r.available:
        return f"{where}: not available ({r.reason})"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    if r.stream:
        figures = (
            f"{r.rps:.0f} streams/s, {r.chunks_per_s:.0f} chunks/s, "
            f"TTFT p50 {ms(r.ttft_p50_ms)} p99 {ms(r.ttft_p99_ms)} ms, "
            f"stream p50 {ms(r.p50_ms)} p99 {ms(r.p99_ms)} ms"
        )
    else:
        figures = f"{r.rps:.0f} req/s, p50 {ms(r.p50_ms)} ms, p99 {ms(r.p99_ms)} ms"
    cost = r.cpu_us_per_chunk if r.stream else r.cpu_us_per_req
    if cost is not None:
        figures += f", CPU {cost:.1f} us/{'chunk' if r.stream else 'req'}"
    return f"{where}: {figures}, errors {r.errors}" + "".join(
        f", {k} {v:.0f}%" for k, v in r.cpu_pct.items() if "." not in k
    )


def _memory(samples: list[tuple[int | None, int | None]]) -> Memory:
    idle = [i for i, _ in samples if i is not None]
    peak = [p for _, p in samples if p is not None]
    return Memory(max(idle, default=None), max(peak, default=None))


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
