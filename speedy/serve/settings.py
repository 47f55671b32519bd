"""Server settings (load-time) as a frozen dataclass, validated on construction."""

from __future__ import annotations

import os
from dataclasses import dataclass

from speedy.errors import InputError


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ServeSettings:
    """How the service runs.

    workers: synthesis threads running at once (default: one per core). threads_per_worker: ONNX Runtime
    intra-op threads of each run (default cores // workers, so workers × threads never oversubscribes;
    on the default voice one thread per sentence-sized run measured faster than two). queue: requests
    that may wait for a worker; beyond it the answer is 503 with Retry-After. timeout_s: per request.
    malloc_arenas: glibc malloc arenas (default: one per worker; speedy.runtime.malloc); trim_memory: give
    freed heap memory back whenever the pool goes idle (RSS after a 4-client load 207 MB instead of 318 MB).
    Trimming after every run instead cost 19 % of the throughput at 4 clients (3.71-3.76 vs 4.64 req/s,
    p95 1.26-1.27 vs 0.99 s; `speedy loadtest --clients 4 --seconds 60`, default voice, 2 cores): every
    run then faulted its tensors' pages in afresh.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 0
    threads_per_worker: int = 0
    queue: int = 16
    timeout_s: float = 60.0
    api_key: str | None = None
    max_chars: int = 500
    max_body_bytes: int = 1 << 20
    malloc_arenas: int = 0
    trim_memory: bool = True

    def __post_init__(self) -> None:
        cores = _cores()
        workers = self.workers or cores
        object.__setattr__(self, "workers", workers)
        object.__setattr__(self, "threads_per_worker", self.threads_per_worker or max(1, cores // workers))
        object.__setattr__(self, "malloc_arenas", self.malloc_arenas or workers)
        if not 1 <= workers <= 64:
            raise InputError(f"--workers must be in [1, 64], got {workers}")
        if not 0 <= self.queue <= 10_000:
            raise InputError(f"--queue must be in [0, 10000], got {self.queue}")
        if not 0 < self.timeout_s <= 3600:
            raise InputError(f"timeout must be in (0, 3600] seconds, got {self.timeout_s}")
        if not 1 <= self.port <= 65535:
            raise InputError(f"--port must be in [1, 65535], got {self.port}")
        if self.api_key is not None and not self.api_key.strip():
            raise InputError("--api-key is empty")
