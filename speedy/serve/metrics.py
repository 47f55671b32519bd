"""Prometheus metrics, one registry per app (so several apps in one process never collide)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    queue_depth: Gauge
    audio_seconds: Counter
    rtf: Histogram

    @classmethod
    def create(cls) -> Metrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            requests=Counter(
                "speedy_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r
            ),
            latency=Histogram(
                "speedy_request_seconds",
                "Request latency by route",
                ["route"],
                registry=r,
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60),
            ),
            queue_depth=Gauge("speedy_queue_depth", "Synthesis requests admitted (running + waiting)", registry=r),
            audio_seconds=Counter("speedy_audio_seconds_total", "Seconds of audio produced", registry=r),
            rtf=Histogram(
                "speedy_rtf",
                "Real-time factor of synthesis (wall / audio seconds)",
                registry=r,
                buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
            ),
        )
