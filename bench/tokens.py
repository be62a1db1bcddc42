"""`python -m bench.tokens`: the token estimator's error against o200k_base, and its cost.

Error: a corpus is cut (seeded) from text found on this machine: English prose (licences,
vim's manual, man pages), code (the Python standard library, C headers), JSON (botocore's
service models: with documentation, and bare shapes, pretty and compact), logs and tables
(dpkg, /etc/services), random identifiers (base64, hex, UUIDs, keys; generated), and other
languages (vim's tutor and message catalogues, translated man pages, gettext catalogues:
45 languages, 16 scripts). Each sample is 300-3000 characters. The reference is tiktoken's
o200k_base, which is not a dependency and needs its BPE file offline: install tiktoken and
point TIKTOKEN_CACHE_DIR at a folder holding o200k_base.tiktoken under the name tiktoken
caches it by (the sha1 of its URL). Without it only the cost is measured.

Cost: microseconds per `estimate_tokens` call (the once-per-request estimate) for request
shapes from a one-line chat to a 600 kB image.
"""

from __future__ import annotations

import base64
import glob
import gzip
import importlib.util
import json
import os
import random
import re
import statistics
import string
import sys
import timeit
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator

import msgspec

from actors import ChatRequest, estimate_tokens, text_tokens

Sample = tuple[str, str, str]  # category, source, text
_PY = os.path.dirname(os.__file__)


def _cut(rng: random.Random, text: str, n: int) -> Iterator[str]:
    for _ in range(n if len(text) >= 300 else 0):
        size = rng.randint(300, min(3000, len(text)))
        start = rng.randint(0, len(text) - size)
        yield text[start : start + size]


def _read(path: str) -> str:
    if path.endswith(".gz"):
        return gzip.open(path).read().decode("utf-8", "replace")
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def _man(text: str) -> str:
    """groff source to rough prose: macro lines and font escapes dropped."""
    lines = []
    for line in text.splitlines():
        if line.startswith(".") or line.startswith("'\\\""):
            parts = line.split(None, 1)
            keep = parts[0] in (".B", ".I", ".BR", ".IR", ".SH", ".SS") and len(parts) > 1
            line = parts[1] if keep else ""
        lines.append(re.sub(r"\\f[BIRP]|\\\(..|\\&", "", line).replace("\\-", "-"))
    return "\n".join(line for line in lines if line)


def _catalogue(path: str) -> str:
    import gettext

    try:
        with open(path, "rb") as file:
            catalogue = gettext.GNUTranslations(file)._catalog  # type: ignore[attr-defined]
    except (OSError, UnicodeDecodeError, LookupError, ValueError):
        return ""
    return "\n".join(v for k, v in catalogue.items() if k and isinstance(v, str))


def corpus(seed: int = 42) -> list[Sample]:
    """The samples this machine has the sources for."""
    rng = random.Random(seed)
    out: list[Sample] = []

    def add(category: str, paths: list[str], n: int, read: Callable[[str], str] = _read) -> None:
        for path in paths:
            out.extend((category, path, t) for t in _cut(rng, read(path), n))

    def pick(pattern: str, k: int) -> list[str]:
        found = sorted(glob.glob(pattern))
        return rng.sample(found, min(k, len(found)))

    add("prose", pick("/usr/share/common-licenses/*[0-9]", 6), 12)
    add("prose", pick("/usr/share/vim/vim*/doc/usr_*.txt", 20), 4)
    add("prose", pick("/usr/share/man/man1/*.gz", 12), 1, lambda p: _man(_read(p)))
    add("code", pick(f"{_PY}/*.py", 40), 3)
    add("code", pick("/usr/include/*.h", 30), 2)
    botocore = importlib.util.find_spec("botocore")
    data = os.path.dirname(botocore.origin or "") if botocore else "/nonexistent"
    models = pick(f"{data}/data/*/*/service-2.json.gz", 30)
    for path in models:
        model = json.loads(_read(path))
        shapes = json.dumps(model.get("shapes", {}), separators=(",", ":"))
        for text in (json.dumps(model, indent=2), json.dumps(model, separators=(",", ":"))):
            out.extend(("json", path, t) for t in _cut(rng, text, 2))
        out.extend(("json", path + ":shapes", t) for t in _cut(rng, shapes, 2))
    add("data", [p for p in ("/var/lib/dpkg/status", "/etc/services") if os.path.exists(p)], 10)
    add("non-en", pick("/usr/share/vim/vim*/tutor/tutor.*.utf-8", 30), 6)
    add("non-en", pick("/usr/share/vim/vim*/lang/*/LC_MESSAGES/vim.mo", 40), 3, _catalogue)
    add("non-en", pick("/usr/share/man/[a-z][a-z]*/man1/*.gz", 80), 1, lambda p: _man(_read(p)))
    for lang in "ar he hi th fa bn ta ka am ml te ur ne".split():
        texts = [_catalogue(p) for p in sorted(glob.glob(f"/usr/share/locale/{lang}/*/*.mo"))]
        out.extend(("non-en", lang, t) for t in _cut(rng, "\n".join(texts), 4))
    alphabet = string.ascii_letters + string.digits
    for i in range(40):
        size = rng.randint(200, 3000)
        text = [
            base64.b64encode(rng.randbytes(size)).decode(),
            rng.randbytes(size // 2).hex(),
            "\n".join(str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(size // 37)),
            " ".join(
                "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 40)))
                for _ in range(size // 24)
            ),
        ][i % 4]
        out.append(("random", f"random{i % 4}", text))
    return out


def _reference() -> Callable[[str], int] | None:
    try:
        import tiktoken  # type: ignore[import-not-found,unused-ignore]

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # not installed, or no BPE file offline
        print(f"no o200k_base reference ({type(exc).__name__}: {exc}); cost only", file=sys.stderr)
        return None
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def error_table(samples: list[Sample], count: Callable[[str], int]) -> None:
    ratios: dict[str, list[float]] = defaultdict(list)
    naive: dict[str, list[float]] = defaultdict(list)
    for category, _, text in samples:
        real = count(text)
        ratios[category].append(text_tokens(text) / real)
        naive[category].append(len(msgspec.json.encode(text)) / 4 / real)
    ratios["all"] = [r for values in list(ratios.values()) for r in values]
    naive["all"] = [r for values in list(naive.values()) for r in values]
    print(f"{'estimate/o200k':14} {'n':>4} {'mean':>6} {'p5':>6} {'p95':>6} {'|err|':>6}  len/4")
    for category, values in ratios.items():
        values.sort()
        p5, p95 = values[len(values) // 20], values[-1 - len(values) // 20]
        mape = statistics.mean(abs(v - 1) for v in values) * 100
        old = statistics.mean(abs(v - 1) for v in naive[category]) * 100
        mean = statistics.mean(values)
        print(
            f"{category:14} {len(values):4d} {mean:6.3f} {p5:6.3f} {p95:6.3f} {mape:5.1f}%"
            f"  {statistics.mean(naive[category]):.2f}x, |err| {old:.0f}%"
        )


def long_table(samples: list[Sample], count: Callable[[str], int]) -> None:
    """Long texts are estimated from samples: each category joined into one text."""
    print(f"\n{'long text':14} {'chars':>8} {'estimate/o200k':>15}")
    categories = dict.fromkeys(c for c, _, _ in samples)
    for category in categories:
        text = "\n".join(t for c, _, t in samples if c == category)
        print(f"{category:14} {len(text):8d} {text_tokens(text) / count(text):15.3f}")


def _requests(samples: list[Sample]) -> dict[str, ChatRequest]:
    prose = [t for c, _, t in samples if c == "prose"] or ["Hello there. " * 200]
    code = "\n".join(t for c, _, t in samples if c == "code")[:20_000] or "x = 1\n" * 3000
    image = (
        "data:image/png;base64,"
        + base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (3000).to_bytes(4, "big") * 2 + bytes(450_000)
        ).decode()
    )
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a record up by id",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    }
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": prose[i % len(prose)][:400]}
        for i in range(6)
    ]
    shapes: dict[str, list[object]] = {
        "one-line chat": [{"role": "user", "content": "hi"}],
        "6 turns, 2.4 kB": turns,
        "20 kB of code": [{"role": "user", "content": code}],
        "600 kB image": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
    }
    out = {
        name: msgspec.convert({"model": "g", "messages": messages}, ChatRequest)
        for name, messages in shapes.items()
    }
    out["10 tools + chat"] = msgspec.convert(
        {"model": "g", "messages": turns[:1], "tools": [tool] * 10}, ChatRequest
    )
    return out


def cost_table(samples: list[Sample]) -> None:
    print(f"\n{'request':18} {'µs/estimate':>12} {'tokens':>8}")
    for name, request in _requests(samples).items():
        number = 200
        runs = timeit.repeat(
            lambda r=request: estimate_tokens(r, default_output=0), number=number, repeat=5
        )
        tokens = estimate_tokens(request, default_output=0).input
        print(f"{name:18} {min(runs) / number * 1e6:12.1f} {tokens:8d}")


def main() -> None:
    samples = corpus()
    count = _reference()
    if count is not None:
        error_table(samples, count)
        long_table(samples, count)
    cost_table(samples)


if __name__ == "__main__":
    main()
