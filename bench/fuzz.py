"""`python -m bench.fuzz`: fuzzed request bodies against a real daemon, counted from outside.

Starts `dispatcher serve` in a fresh private folder with mock deployments only (so no
answer may be a 5xx: nothing upstream can fail), then sends `--bodies` bodies (default
20,000), half to POST /v1/chat/completions and half to POST /v1/jobs, over one
keep-alive connection: valid requests, valid ones with fields set to anything (huge
integers, wrong types, random JSON), removed or added under unknown names, byte edits
(invalid UTF-8 inside strings, cut bodies), nesting 50 to 5,000 levels deep, numbers of
5,000 digits, random JSON, random bytes, wrong content types, and megabyte-long keys and
model names.

Reports the bodies tried, answers by status class, the 5xx count (the goal is 0), 4xx
answers not in OpenAI's error shape or echoing more than 4 kB, lost connections, whether
the daemon is alive and still serves a valid request and a job, and its peak RSS.
Exits 1 on any of those failures. `tests/test_fuzz.py` is the bounded version of this
that runs in `make test`.
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from actors import ChatCall
from bench.procs import Child, spawn, wait_unix_health

CONFIG = """
[server]
socket = "d.sock"
metrics = ""
drain_timeout_s = 5
[jobs]
store = "jobs.sqlite3"
[router]
num_retries = 0
timeout_s = 10
[[deployment]]
name = "mock-a"
group = "mini"
provider = "mock"
model = "mock-mini"
[[deployment]]
name = "mock-b"
group = "other"
provider = "mock"
model = "mock-other"
"""

GOOD: dict[str, Any] = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}
CHAT_FIELDS = list(ChatCall.__struct_fields__)
"""Every field a chat request may set (the current API's parameters and `fallbacks`)."""
JOB_FIELDS = ["request", "idempotency_key", "metadata", "timeout_s", "priority"]
HUGE_INTS = [2**31, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**400)]
LONG_NUMBERS = [b"9" * 5000, b"-" + b"1" * 4400, b"1e400", b"-1e999", b"1" + b"0" * 400 + b".5"]
NOISE = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b'"', b"\\", b"{", b"]"]
CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]


class Fuzzer:
    """Bodies from one seeded random generator: the same seed, the same run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def value(self, depth: int = 0) -> Any:
        """Any JSON value, a few levels deep at most."""
        rng = self.rng
        kind = rng.randrange(9 if depth < 3 else 7)
        if kind == 0:
            return None
        if kind == 1:
            return rng.random() < 0.5
        if kind == 2:
            return rng.randint(-(2**70), 2**70)
        if kind == 3:
            return rng.choice(HUGE_INTS)
        if kind == 4:
            return rng.uniform(-1e308, 1e308)
        if kind == 5:
            return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12)))
        if kind == 6:
            return rng.choice(["mini", "other", "nope", "user", "function", "auto", "text"])
        if kind == 7:
            return [self.value(depth + 1) for _ in range(rng.randrange(4))]
        return {self.value_key(): self.value(depth + 1) for _ in range(rng.randrange(4))}

    def value_key(self) -> str:
        return self.rng.choice(["k", "type", "role", "content", "name", "", "\u00e9", "0"])

    def mutated(self, base: dict[str, Any], fields: list[str]) -> bytes:
        body = dict(base)
        for _ in range(self.rng.randrange(1, 4)):
            name = self.rng.choice([*fields, self.value_key()])
            if name in body and self.rng.random() < 0.3:
                del body[name]
            else:
                body[name] = self.value()
        return msgspec.json.encode(body)

    def byte_edits(self, raw: bytes) -> bytes:
        data = bytearray(raw)
        for _ in range(self.rng.randrange(1, 4)):
            at = self.rng.randrange(len(data) + 1)
            noise = self.rng.choice(NOISE)
            match self.rng.randrange(3):
                case 0:
                    data[at:at] = noise
                case 1:
                    data[at : at + len(noise)] = noise
                case _:
                    del data[at:]
        return bytes(data)

    def deep(self, raw: bytes) -> bytes:
        levels = self.rng.randrange(50, 5000)
        opening, closing = self.rng.choice([(b"[", b"]"), (b'{"k":', b"}"), (b'[{"k":', b"}]")])
        nested = opening * levels + b"1" + closing * levels
        return raw.replace(self.rng.choice([b'"hi"', b'"mini"', b'"user"']), nested, 1)

    def long_number(self, raw: bytes) -> bytes:
        """A value replaced by a number no integer or float type holds."""
        target = self.rng.choice([b'"hi"', b'"mini"', b'"user"', b"1", b"5"])
        return raw.replace(target, self.rng.choice(LONG_NUMBERS), 1)

    def huge_echo(self, base: dict[str, Any]) -> bytes:
        long = "x" * self.rng.choice([1000, 100_000, 1_000_000])
        body = dict(base)
        if self.rng.random() < 0.5:
            body[long] = 1
        else:
            body["model" if "model" in body else "idempotency_key"] = long
        return msgspec.json.encode(body)

    def body(self, base: dict[str, Any], fields: list[str]) -> tuple[str, bytes, str]:
        """(case, body, content type) for one request."""
        raw = msgspec.json.encode(base)
        cases: list[tuple[str, Callable[[], bytes]]] = [
            ("valid", lambda: raw),
            ("mutated", lambda: self.mutated(base, fields)),
            ("mutated+bytes", lambda: self.byte_edits(self.mutated(base, fields))),
            ("bytes", lambda: self.byte_edits(raw)),
            ("deep", lambda: self.deep(raw)),
            ("long-number", lambda: self.long_number(raw)),
            ("random-json", lambda: msgspec.json.encode(self.value())),
            ("random-bytes", lambda: self.rng.randbytes(self.rng.randrange(200))),
            ("huge-echo", lambda: self.huge_echo(base)),
        ]
        weights = [1, 6, 2, 3, 2, 1, 2, 1, 1]
        [(case, make)] = self.rng.choices(cases, weights)
        content_type = "application/json"
        if self.rng.random() < 0.05:
            content_type, case = self.rng.choice(CONTENT_TYPES), case + "+content-type"
        return case, make(), content_type


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        self.sock = sock


def shape_problem(status: int, body: bytes) -> str | None:
    """What is wrong with a 4xx answer, or None."""
    if len(body) > 4096:
        return f"{len(body)}-byte error body"
    try:
        error = msgspec.json.decode(body)["error"]
        ok = (
            isinstance(error["message"], str)
            and isinstance(error["type"], str)
            and (error["code"] is None or isinstance(error["code"], str))
            and (error["param"] is None or isinstance(error["param"], str))
        )
    except (msgspec.DecodeError, KeyError, TypeError):
        ok = False
    return None if ok else f"not OpenAI's error shape: {body[:120]!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--bodies", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    (work / "fuzz.toml").write_text(CONFIG)
    script = Path(sys.executable).with_name("dispatcher")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "dispatcher"]
    argv_ = [*base, "serve", "--config", str(work / "fuzz.toml"), "--log-level", "ERROR"]
    child: Child = spawn("daemon-fuzz", argv_, None, work / "daemon.log")
    try:
        wait_unix_health(child, work / "d.sock", timeout=30)
        return run(child, work, args.bodies, args.seed)
    finally:
        child.stop()
        shutil.rmtree(work, ignore_errors=True)


def run(child: Child, work: Path, total: int, seed: int) -> int:
    fuzzer = Fuzzer(seed)
    conn = UnixConnection(work / "d.sock")
    classes: Counter[str] = Counter()
    server_errors: Counter[str] = Counter()
    problems: list[str] = []
    lost = tried = 0
    envelope = {"request": GOOD, "priority": 1, "timeout_s": 5, "metadata": {"k": "v"}}
    started = time.perf_counter()
    for n in range(total):
        if n % 2:
            path = "/v1/jobs"
            if fuzzer.rng.random() < 0.5:
                case, body, ctype = fuzzer.body(envelope, JOB_FIELDS)
            else:
                case, inner, ctype = fuzzer.body(GOOD, CHAT_FIELDS)
                body = b'{"request":' + inner + b"}"
        else:
            path = "/v1/chat/completions"
            case, body, ctype = fuzzer.body(GOOD, CHAT_FIELDS)
        headers = {"content-type": ctype} if ctype else {}
        tried += 1
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            lost += 1
            problems.append(f"{path} {case}: connection lost ({exc!r}), body {body[:80]!r}")
            conn.close()
            if not child.alive():
                problems.append(f"the daemon died (exit status {child.popen.poll()})")
                break
            continue
        status = response.status
        classes[f"{status // 100}xx"] += 1
        if status >= 500:
            server_errors[f"{path} {case}"] += 1
            problems.append(f"{path} {case}: {status} for {body[:80]!r}")
        elif status >= 400 and (problem := shape_problem(status, answer)):
            problems.append(f"{path} {case}: {status} {problem}")
    elapsed = time.perf_counter() - started
    alive = child.alive() and still_serving(conn)
    peak = child.memory_kb("VmHWM")
    print(f"bodies tried:      {tried} of {total} in {elapsed:.1f} s (seed {seed})")
    print(f"answers:           {dict(sorted(classes.items()))}")
    print(f"5xx answers:       {sum(server_errors.values())} {dict(server_errors) or ''}")
    print(f"lost connections:  {lost}")
    print(f"other problems:    {len(problems) - sum(server_errors.values()) - lost}")
    print(f"daemon log:        {child.last_log_line()[:200]}")
    for line in problems[:20]:
        print(f"  {line}")
    print(f"daemon alive and serving afterwards: {'yes' if alive else 'NO'}")
    print(f"daemon peak RSS:   {peak / 1024:.0f} MB" if peak else "daemon peak RSS: unknown")
    return 0 if alive and not problems else 1


def still_serving(conn: UnixConnection) -> bool:
    try:
        conn.request("POST", "/v1/chat/completions", msgspec.json.encode(GOOD), _JSON)
        chat = conn.getresponse()
        chat.read()
        conn.request("POST", "/v1/jobs", msgspec.json.encode({"request": GOOD}), _JSON)
        job = conn.getresponse()
        job_id = msgspec.json.decode(job.read())["id"]
        conn.request("GET", f"/v1/jobs/{job_id}?wait=10")
        done = conn.getresponse()
        state = msgspec.json.decode(done.read())["status"]
    except (OSError, http.client.HTTPException, KeyError):
        return False
    return (chat.status, job.status, state) == (200, 202, "succeeded")


_JSON = {"content-type": "application/json"}

if __name__ == "__main__":
    sys.exit(main())
