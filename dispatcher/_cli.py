"""`dispatcher` command line: serve, check, and clients of the socket."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import httpx
import msgspec

from config import Config, ConfigError, default_config_path, load_config

from ._batch import submit_file
from ._exceptions import DaemonError
from ._jobs_cli import jobs_line, show_jobs
from ._logging import FORMATS, LEVELS, configure_logging
from ._version import VERSION


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"dispatcher: config error: {exc}", file=sys.stderr)
        return 1
    except DaemonError as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_)
        cmd.add_argument(
            "--config",
            type=Path,
            help="config file (default: $DISPATCHER_CONFIG, "
            "./config/dispatcher.toml, then the shipped default)",
        )
        return cmd

    serve = command("serve", "run the daemon in the foreground")
    serve.add_argument(
        "--log-level",
        type=_one_of(LEVELS),
        metavar="LEVEL",
        default=os.environ.get("DISPATCHER_LOG_LEVEL", "info"),
        help=f"{' | '.join(LEVELS)} (default: $DISPATCHER_LOG_LEVEL, then info)",
    )
    serve.add_argument(
        "--log-format",
        type=_one_of(FORMATS),
        metavar="FORMAT",
        default=os.environ.get("DISPATCHER_LOG_FORMAT", "text"),
        help="text, or json: one object per line (default: $DISPATCHER_LOG_FORMAT, then text)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per request: group, deployment, status, attempts, duration, tokens",
    )
    serve.set_defaults(func=_serve)

    check = command("check", "validate a config and print its groups (secrets redacted)")
    check.set_defaults(func=_check)

    chat = command("chat", "send one chat message through the daemon")
    chat.add_argument("-m", "--model", required=True, help="model group")
    chat.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    chat.add_argument("text", nargs="+")
    chat.set_defaults(func=_chat)

    status = command("status", "show the daemon's deployments: state, inbox, in flight")
    status.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    status.set_defaults(func=_status)

    submit = command("submit", "run an OpenAI Batch input file (JSONL) as durable jobs")
    submit.add_argument("file", type=Path, help="batch input: one request per line")
    submit.add_argument("-o", "--output", type=Path, help="default: NAME.output.jsonl beside it")
    submit.add_argument("--concurrency", type=int, default=16, help="jobs awaited at once")
    submit.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    submit.set_defaults(func=_submit)

    jobs = command("jobs", "list the newest jobs, or show one")
    jobs.add_argument("id", nargs="?", help="a job id: show that job")
    jobs.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    jobs.set_defaults(func=_jobs)
    return parser


def _one_of(names: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse type: one of `names`, any case (a clean usage error otherwise, also for a
    default taken from the environment)."""

    def parse(text: str) -> str:
        name = text.strip().lower()
        if name not in names:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {text!r}")
        return name

    return parse


def _config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get("DISPATCHER_CONFIG")
    if env:
        return Path(env)
    local = Path("config/dispatcher.toml")
    return local if local.is_file() else default_config_path()


def _load(args: argparse.Namespace) -> tuple[Config, Path]:
    path = _config_path(args)
    return load_config(path), path.resolve().parent


# -- serve / check ------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format, access_log=args.access_log)
    from ._daemon import serve

    path = _config_path(args)
    config = load_config(path)
    anyio.run(
        serve,
        config,
        path.resolve().parent,
        path,
        backend="asyncio",
        backend_options={"use_uvloop": True},
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = load_config(path)
    base = path.resolve().parent
    out = [f"{path}: ok"]
    server = config.server
    out.append(
        f"server: socket={(base / server.socket).resolve()} metrics={server.metrics or 'off'} "
        f"listen={server.listen or 'off'} max_body_bytes={server.max_body_bytes}"
    )
    if server.listen:
        keys = ", ".join(key.redacted() for key in server.api_keys) or "none (loopback)"
        out.append(f"listen: api_keys=[{keys}] allowed_hosts=[{', '.join(server.allowed_hosts)}]")
    out.append(
        f"connections: max_connections={server.max_connections} "
        f"header_timeout_s={server.header_timeout_s:g} body_timeout_s={server.body_timeout_s:g} "
        f"send_timeout_s={server.send_timeout_s:g} "
        f"keepalive_timeout_s={server.keepalive_timeout_s:g} "
        f"max_header_bytes={server.max_header_bytes} max_headers={server.max_headers}"
    )
    router = config.router
    out.append(
        f"router: strategy={router.strategy} num_retries={router.num_retries} "
        f"timeout_s={router.timeout_s:g} cooldown=({router.cooldown.allowed_fails} fails in "
        f"{router.cooldown.window_s:g}s -> {router.cooldown.cooldown_s:g}s)"
    )
    for group, deployments in config.groups().items():
        chain = [
            g
            for g in dict.fromkeys([*router.fallbacks.get(group, ()), *router.default_fallbacks])
            if g != group
        ]
        out.append(f"group {group}" + (f"  (fallbacks: {', '.join(chain)})" if chain else ""))
        for dep in deployments:
            key = dep.api_key.redacted() if dep.api_key is not None else "none"
            out.append(
                f"  - {dep.name}: provider={dep.provider} model={dep.model} "
                f"api_base={dep.api_base or 'default'} api_key={key} "
                + (f"region={dep.region} " if dep.region else "")
                + f"weight={dep.weight:g} "
                f"inbox={dep.inbox} concurrency={dep.concurrency} rpm={dep.rpm or '-'} "
                f"tpm={dep.tpm or '-'} timeout_s={dep.timeout_s:g}"
            )
    for name, table in (
        ("context_window_fallbacks", router.context_window_fallbacks),
        ("content_policy_fallbacks", router.content_policy_fallbacks),
    ):
        for group, chain_ in table.items():
            out.append(f"{name}: {group} -> {', '.join(chain_)}")
    print("\n".join(out))
    return 0


# -- socket clients -------------------------------------------------------------


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        socket_path = Path(args.socket)
    else:
        config, base = _load(args)
        socket_path = base / config.server.socket
    if not socket_path.exists():
        raise DaemonError(f"no daemon socket at {socket_path} (is `dispatcher serve` running?)")
    return socket_path


def _client(args: argparse.Namespace) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=os.fspath(_socket_path(args)))
    return httpx.Client(transport=transport, base_url="http://dispatcher", timeout=None)


def _chat(args: argparse.Namespace) -> int:
    body = {"model": args.model, "messages": [{"role": "user", "content": " ".join(args.text)}]}
    with _client(args) as client:
        response = client.post("/v1/chat/completions", json=body)
    if response.status_code != 200:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    data = response.json()
    message = data["choices"][0]["message"]
    if message.get("content") is not None:
        print(message["content"])
    for call in message.get("tool_calls") or ():
        print(f"[tool call] {call['function']['name']}({call['function']['arguments']})")
    deployment = response.headers.get("x-dispatcher-deployment")
    attempts = response.headers.get("x-dispatcher-attempts")
    print(f"-- {deployment}, {attempts} attempt(s)", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.get("/v1/deployments")
        jobs = jobs_line(client) if response.status_code == 200 else ""
    if response.status_code != 200:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    rows = msgspec.json.decode(response.content)["data"]
    print(
        f"{'deployment':24} {'group':16} {'state':10} {'inbox':>9} {'inflight':>9} {'cooldown':>9}"
    )
    for row in rows:
        print(
            f"{row['name']:24} {row['group']:16} {row['state']:10} "
            f"{row['inbox_used']:>4}/{row['inbox_size']:<4} "
            f"{row['inflight']:>4}/{row['concurrency']:<4} "
            f"{row['cooldown_remaining_s']:>8.1f}s"
        )
    print(jobs)
    return 0


def _submit(args: argparse.Namespace) -> int:
    return submit_file(_socket_path(args), args.file, args.output, concurrency=args.concurrency)


def _jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(show_jobs(client, args.id, args.status, args.limit))
    return 0
