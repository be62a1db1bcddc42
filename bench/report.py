"""The verdicts against the issue's targets, the printed table and the JSON file.

Every ratio is computed within one run: the machine's speed varies from run to run (it is a
shared VM), the ratio between targets measured minutes apart much less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec

from bench.measure import Row

# The targets for the daemon; the relays are held to the same ones for reference.
MIN_RATIO_VS_AIOHTTP_RELAY = 0.6  # req/s at c=16, 0 ms upstream
MAX_ADDED_P50_MS = 0.4  # p50 at c=1, 0 ms upstream, minus direct's
MIN_RATIO_VS_DIRECT = 0.95  # req/s at c=64, 50 ms upstream
MAX_P99_MS = 60.0  # p99 at c=64, 50 ms upstream
MAX_IDLE_RSS_MB = 60.0
REFERENCE_RELAY = "relay-aiohttp"
MAX_OTHER_PCT = 15.0  # % of a core used by processes outside the benchmark: row disturbed


@dataclass(frozen=True)
class Memory:
    idle_kb: int | None  # VmRSS after start-up and one warm request (max over the starts)
    peak_kb: int | None  # VmHWM after the load (max over the starts)


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None  # None: not measured in this run
    limit: str
    ok: bool | None  # None: n/a

    def cell(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:.2f} {'PASS' if self.ok else 'FAIL'}"


def _find(rows: Sequence[Row], target: str, delay_ms: float, c: int) -> Row | None:
    for row in rows:
        if (row.target, row.delay_ms, row.concurrency) == (target, delay_ms, c) and row.available:
            return row
    return None


def _check(name: str, value: float | None, limit: str, passes: Callable[[float], bool]) -> Check:
    return Check(name, value, limit, None if value is None else passes(value))


def evaluate(target: str, rows: Sequence[Row], memory: Memory | None) -> list[Check]:
    """The issue's targets applied to `target`, from rows of the same run."""
    own = [r for r in rows if r.target == target and r.available]
    ref = _find(rows, REFERENCE_RELAY, 0, 16)
    mine16 = _find(rows, target, 0, 16)
    ratio16 = mine16.rps / ref.rps if mine16 and ref and ref.rps else None
    direct1, mine1 = _find(rows, "direct", 0, 1), _find(rows, target, 0, 1)
    added = (
        mine1.p50_ms - direct1.p50_ms
        if mine1 and direct1 and mine1.p50_ms is not None and direct1.p50_ms is not None
        else None
    )
    direct64, mine64 = _find(rows, "direct", 50, 64), _find(rows, target, 50, 64)
    ratio64 = mine64.rps / direct64.rps if mine64 and direct64 and direct64.rps else None
    p99 = mine64.p99_ms if mine64 else None
    idle = memory.idle_kb / 1024 if memory and memory.idle_kb is not None else None
    checks = [
        _check(
            f"req/s vs {REFERENCE_RELAY}, c=16 0ms",
            ratio16,
            f">= {MIN_RATIO_VS_AIOHTTP_RELAY}",
            lambda v: v >= MIN_RATIO_VS_AIOHTTP_RELAY,
        ),
        _check(
            "added p50 ms, c=1 0ms",
            added,
            f"<= {MAX_ADDED_P50_MS}",
            lambda v: v <= MAX_ADDED_P50_MS,
        ),
        _check(
            "req/s vs direct, c=64 50ms",
            ratio64,
            f">= {MIN_RATIO_VS_DIRECT}",
            lambda v: v >= MIN_RATIO_VS_DIRECT,
        ),
        _check("p99 ms, c=64 50ms", p99, f"<= {MAX_P99_MS:g}", lambda v: v <= MAX_P99_MS),
        _check("idle RSS MB", idle, f"<= {MAX_IDLE_RSS_MB:g}", lambda v: v <= MAX_IDLE_RSS_MB),
        # Not in the list, but a fast error path must not pass for throughput.
        _check("errors, all rows", float(sum(r.errors for r in own)) if own else None, "= 0",
               lambda v: v == 0),
    ]  # fmt: skip
    if target == REFERENCE_RELAY:
        checks = checks[1:]  # the ratio to itself says nothing
    return checks


def verdict(checks: Sequence[Check]) -> str:
    if any(c.ok is False for c in checks):
        return "FAIL"
    return "PASS" if all(c.ok for c in checks) else "INCOMPLETE"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _mb(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.1f}"


def format_table(rows: Sequence[Row]) -> str:
    head = (
        f"{'target':<20} {'delay':>6} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6}   cpu% target/upstream/loadgen/other"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        where = f"{r.target:<20} {r.delay_ms:>4g}ms {r.concurrency:>3}"
        if not r.available:
            lines.append(f"{where}   {r.target}: not available ({r.reason})")
            continue
        cpu = "/".join(
            f"{r.cpu_pct[k]:.0f}" if k in r.cpu_pct else "-"
            for k in ("target", "upstream", "loadgen", "other")
        )
        kinds = "  " + ", ".join(f"{k}={n}" for k, n in sorted(r.error_kinds.items()))
        lines.append(
            f"{where} {r.rps:>9.0f} {_ms(r.p50_ms):>8} {_ms(r.p99_ms):>8} {r.errors:>6}   {cpu}"
            + (kinds if r.errors else "")
        )
    return "\n".join(lines)


def format_ratios(verdicts: dict[str, list[Check]], memory: dict[str, Memory]) -> str:
    targets = list(verdicts)
    if not targets:
        return "ratios: no target besides direct was measured"
    names: list[str] = []
    limits: dict[str, str] = {}
    for checks in verdicts.values():
        for c in checks:
            if c.name not in limits:
                names.append(c.name)
                limits[c.name] = c.limit
    width = max(14, *(len(t) for t in targets))
    lines = [
        f"{'ratios (same run)':<28} " + " ".join(f"{t:>{width}}" for t in targets) + "  target",
    ]
    for name in names:
        cells = []
        for t in targets:
            found = [c for c in verdicts[t] if c.name == name]
            cells.append(found[0].cell() if found else "-")
        lines.append(
            f"{name:<28} " + " ".join(f"{c:>{width}}" for c in cells) + f"  {limits[name]}"
        )
    peak = [_mb(memory[t].peak_kb) if t in memory else "n/a" for t in targets]
    lines.append(f"{'peak RSS MB (info)':<28} " + " ".join(f"{p:>{width}}" for p in peak))
    lines.append(
        f"{'verdict':<28} " + " ".join(f"{verdict(verdicts[t]):>{width}}" for t in targets)
    )
    return "\n".join(lines)


def format_cores(rows: Sequence[Row], aux_cores: Sequence[int]) -> str:
    """Per core, the highest busy and steal figures over the windows, and a warning for every
    row in which the core of the upstream and the load generator was near saturation: there
    the target was not the only limit."""
    measured = [r for r in rows if r.available]
    cores = sorted({k.split(".")[0] for r in measured for k in r.cpu_pct if k.startswith("core")})
    lines = []
    for core in cores:
        parts = []
        for kind in ("busy", "steal"):
            key = f"{core}.{kind}"
            top = max(measured, key=lambda r: r.cpu_pct.get(key, 0.0))
            mean = sum(r.cpu_pct.get(key, 0.0) for r in measured) / len(measured)
            parts.append(
                f"{kind} max {top.cpu_pct.get(key, 0.0):.0f}% "
                f"({top.target} {top.delay_ms:g}ms c={top.concurrency}), mean {mean:.0f}%"
            )
        lines.append(f"{core}: " + "; ".join(parts))
    for r in measured:
        where = f"{r.target} {r.delay_ms:g}ms c={r.concurrency}"
        if r.cpu_pct.get("other", 0.0) >= MAX_OTHER_PCT:
            lines.append(
                f"WARNING: {where}: other processes used {r.cpu_pct['other']:.0f}% of a core "
                "during the window; that row is disturbed, rerun on a quiet machine"
            )
        aux = max((r.cpu_pct.get(f"core{c}.busy", 0.0) for c in aux_cores), default=0.0)
        if r.target != "direct" and aux >= 90:
            lines.append(
                f"WARNING: {where}: the upstream + load generator core was {aux:.0f}% busy: "
                "it, not the target, may have limited that row"
            )
    return "\n".join(lines)


def write_json(
    path: Path,
    meta: dict[str, object],
    rows: Sequence[Row],
    verdicts: dict[str, list[Check]],
    memory: dict[str, Memory],
) -> None:
    document = {
        "meta": meta,
        "rows": [asdict(r) for r in rows],
        "memory_mb": {
            t: {
                "idle": None if m.idle_kb is None else round(m.idle_kb / 1024, 1),
                "peak": None if m.peak_kb is None else round(m.peak_kb / 1024, 1),
            }
            for t, m in memory.items()
        },
        "verdicts": {
            t: {"verdict": verdict(cs), "checks": [asdict(c) for c in cs]}
            for t, cs in verdicts.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
