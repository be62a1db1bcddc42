"""`dispatcher` command line: serve and check here, the socket's clients in `_clients` and
`_batch` (which import nothing of the server)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final

import anyio

from config import (
    Config,
    ConfigError,
    Deployment,
    default_config_path,
    deployment_price,
    load_config,
)

from .._exceptions import DaemonError
from ._batch import submit_file
from ._clients import chat, show_jobs, status
from ._import import import_litellm_command


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
    except KeyboardInterrupt:  # Ctrl-C in a client command: no traceback
        print("dispatcher: interrupted", file=sys.stderr)
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    serve.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="N processes on one socket (all cores); needs [cluster] to share limits",
    )
    serve.add_argument("--worker", help=argparse.SUPPRESS)  # I/N, set by the --workers parent
    serve.add_argument("--inherit", help=argparse.SUPPRESS)  # its listening sockets' fds
    serve.set_defaults(func=_serve)

    check = command("check", "validate a config and print its groups (secrets redacted)")
    check.set_defaults(func=_check)

    chat_ = command("chat", "send one chat message through the daemon")
    chat_.add_argument("-m", "--model", required=True, help="model group")
    chat_.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    chat_.add_argument("text", nargs="+")
    chat_.set_defaults(func=_chat)

    status_ = command("status", "show the daemon's deployments: state, inbox, in flight")
    status_.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    status_.set_defaults(func=_status)

    submit = command("submit", "run an OpenAI Batch input file (JSONL) as durable jobs")
    submit.add_argument("file", type=Path, help="batch input: one request per line")
    submit.add_argument("-o", "--output", type=Path, help="default: NAME.output.jsonl beside it")
    submit.add_argument("--concurrency", type=int, default=16, help="jobs awaited at once")
    submit.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    submit.set_defaults(func=_submit)

    port = sub.add_parser(
        "import-litellm",
        help="convert a LiteLLM proxy config.yaml to our TOML",
        description="convert a LiteLLM proxy config.yaml to our TOML; every key that "
        "cannot be carried over is listed with the reason",
    )
    port.add_argument("file", type=Path, help="LiteLLM config.yaml")
    port.add_argument("-o", "--output", type=Path, help="write here (mode 0600; default: stdout)")
    port.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    port.set_defaults(func=import_litellm_command)

    jobs = command("jobs", "list the newest jobs, or show one")
    jobs.add_argument("id", nargs="?", help="a job id: show that job")
    jobs.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--socket", type=Path, help="daemon socket (default: from the config)")
    jobs.set_defaults(func=_jobs)
    return parser


LEVELS: Final = ("debug", "info", "warning", "error", "critical")
FORMATS: Final = ("text", "json")
_GC_GEN0_THRESHOLD: Final = 10_000
"""Tracked allocations (net) between gen-0 collections; CPython's default is 700."""


def _version() -> str:
    """The installed distribution's version (what `dispatcher_build_info` carries too)."""
    try:
        return version("llm-dispatcher")
    except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
        return "0+unknown"


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
    # The server, only for this command.
    from .._daemon import serve
    from .._logging import configure_logging
    from .._workers import Inherited, check_workers, supervise

    pool = bool(args.workers or args.worker)
    configure_logging(
        args.log_level,
        "json" if args.log_format == "json" else "text",
        access_log=args.access_log,
        with_pid=pool,
    )

    path = _config_path(args)
    config = load_config(path)
    if args.workers:
        return supervise(config, path, args.workers, log_level=args.log_level)
    inherited = None
    if args.inherit is not None:
        inherited = Inherited.parse(args.worker or "0/1", args.inherit)
        check_workers(config, inherited.workers)
    _tune_gc()
    anyio.run(
        serve,
        config,
        path.resolve().parent,
        path,
        inherited,
        backend="asyncio",
        backend_options={"use_uvloop": True},
    )
    return 0


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for a daemon that allocates in bursts.

    Each request and each streamed chunk allocates a few dozen tracked objects (Structs,
    tuples, dicts); at CPython's default gen-0 threshold (700) that ran a collection every
    few requests, and the collections showed as ~10 % of the daemon's CPU in py-spy
    profiles. What start-up built (modules, config, the interpreter's own objects) lives
    as long as the process: `gc.freeze()` moves it out of every later collection.
    Almost nothing on the hot path makes reference cycles, so a higher gen-0 threshold
    keeps memory flat."""
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(_GC_GEN0_THRESHOLD, second, third)


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
    if config.cluster.enabled:
        out.append(f"cluster: redis={config.cluster.describe()} name={config.cluster.name}")
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
                f"tpm={dep.tpm or '-'} timeout_s={dep.timeout_s:g} price={_price(dep)}"
            )
    for name, table in (
        ("context_window_fallbacks", router.context_window_fallbacks),
        ("content_policy_fallbacks", router.content_policy_fallbacks),
    ):
        for group, chain_ in table.items():
            out.append(f"{name}: {group} -> {', '.join(chain_)}")
    print("\n".join(out))
    return 0


def _price(dep: Deployment) -> str:
    """Where a deployment's cost comes from, for `check` (none: its cost is not reported)."""
    price = deployment_price(dep)
    if price is None:
        return "none"
    rates = f"{price.input:g}/{price.output:g} per Mtok"
    return f"{rates} ({'deployment' if dep.input_cost_per_mtok is not None else 'model table'})"


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


def _chat(args: argparse.Namespace) -> int:
    return chat(_socket_path(args), args.model, " ".join(args.text))


def _status(args: argparse.Namespace) -> int:
    return status(_socket_path(args))


def _submit(args: argparse.Namespace) -> int:
    return submit_file(_socket_path(args), args.file, args.output, concurrency=args.concurrency)


def _jobs(args: argparse.Namespace) -> int:
    print(show_jobs(_socket_path(args), args.id, args.status, args.limit))
    return 0
