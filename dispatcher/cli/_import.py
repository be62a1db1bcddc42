"""`dispatcher import-litellm`: a LiteLLM proxy config.yaml, as our TOML."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from config import parse_config

from ._litellm import AnyEnvironment, LiteLLMConfigError, import_litellm


def import_litellm_command(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
        imported = import_litellm(text)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"dispatcher: {args.file}: cannot read: {exc}", file=sys.stderr)
        return 1
    except LiteLLMConfigError as exc:
        print(f"dispatcher: {args.file}: {exc}", file=sys.stderr)
        return 1
    toml = imported.toml(str(args.file))
    # The result must load as it is (secrets from the environment are checked at `check`).
    config = parse_config(toml, file="<imported>", env=AnyEnvironment())
    if args.output is not None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if args.force else os.O_EXCL)
        try:
            fd = os.open(args.output, flags, 0o600)
        except FileExistsError:
            print(f"dispatcher: {args.output} exists (--force to overwrite)", file=sys.stderr)
            return 1
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(toml)
    else:
        sys.stdout.write(toml)
    groups = config.groups()
    report = [
        f"{len(config.deployment)} deployment(s) in {len(groups)} group(s)"
        + (f" written to {args.output}" if args.output is not None else "")
    ]
    if imported.skipped:
        report.append(f"not carried over ({len(imported.skipped)}):")
        report.extend(f"  {s.key}: {s.reason}" for s in imported.skipped)
    report.extend(f"note: {note}" for note in imported.notes)
    if args.output is not None:
        report.append(f"next: dispatcher check --config {args.output}")
    print("\n".join(report), file=sys.stderr)
    return 0
