"""The `dispatcher` command: `serve` and `check`, and the socket's clients (`chat`, `status`,
`submit`, `jobs`), which talk HTTP over the socket and import nothing of the server."""

from ._batch import BatchProgress, default_output, idempotency_key, run_batch, submit_file
from ._main import main

__all__ = [
    "BatchProgress",
    "default_output",
    "idempotency_key",
    "main",
    "run_batch",
    "submit_file",
]
