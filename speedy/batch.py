"""Batch synthesis: a text or JSONL file → OUTDIR/<id>.wav + OUTDIR/index.jsonl, resumable.

Two runners share one item function (`synth_item`): local worker processes (one Synthesizer per process,
loaded once by the pool's initializer) and a Ray Data pipeline (`map_batches` over an actor pool, each actor
holding one Synthesizer). Workers return 16-bit PCM to the driver, which writes every WAV to a temp name
and renames it, then appends the item's index line: a cluster needs no shared file system, and a killed
run leaves neither a partial WAV nor an index line for a missing WAV.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speedy.errors import InputError, MissingExtraError, ModelError, OutputError, SpeedyError

#: one item's text is at most this many characters (a corpus line, not a book: split books into lines)
MAX_ITEM_CHARS = 2000
INDEX = "index.jsonl"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OPTION_KEYS = ("speed", "pitch", "pitch_range", "energy", "emotion", "voice")
#: env var naming a "module:function" each worker calls before loading (plug-in families, test toys)
SETUP_ENV = "SPEEDY_BATCH_SETUP"


@dataclass(frozen=True)
class BatchItem:
    """One line of INPUT: a file-safe id, its text and per-item options; `error` set when the line is bad."""

    id: str
    text: str
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class BatchConfig:
    """How a batch runs. workers: processes (or Ray actors); threads: ONNX Runtime threads of each;
    ray: None = local processes, "local" = a local Ray, else a cluster address (e.g. ray://head:10001)."""

    artifact: str | None = None
    workers: int = 1
    threads: int = 1
    ray: str | None = None
    max_chars: int = MAX_ITEM_CHARS
    batch_size: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 1024:
            raise InputError(f"--workers must be in [1, 1024], got {self.workers}")
        if not 1 <= self.threads <= 256:
            raise InputError(f"--threads-per-worker must be in [1, 256], got {self.threads}")


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: counts over INPUT, and throughput over the items synthesised in this run."""

    items: int
    done: int
    skipped: int
    errors: int
    audio_s: float
    wall_s: float
    runner: str
    outdir: str
    first_result_s: float | None = None  # start-up: seconds until the first synthesised item came back

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["items_per_s"] = round(self.done / self.wall_s, 3) if self.wall_s else None
        d["audio_s_per_s"] = round(self.audio_s / self.wall_s, 3) if self.wall_s else None
        d["audio_s"], d["wall_s"] = round(self.audio_s, 3), round(self.wall_s, 3)
        steady = self.wall_s - (self.first_result_s or 0.0)
        d["steady_items_per_s"] = round((self.done - 1) / steady, 3) if self.done > 1 and steady > 0 else None
        d["first_result_s"] = None if self.first_result_s is None else round(self.first_result_s, 3)
        return d


# ---- input -------------------------------------------------------------------------------------
def read_items(path: Path) -> list[BatchItem]:
    """Parse INPUT: JSONL (suffix .jsonl, or a first line starting with '{') or plain text, one item a line.

    Text lines get ids 000001… (line numbers). Bad lines become items with `error` set (the batch goes on);
    an unreadable file is an InputError.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        lines = path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: invalid UTF-8 at byte offset {e.start}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    first = next((s for s in lines if s.strip()), "")
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson") or first.lstrip().startswith("{")
    items, seen = [], set()
    for n, line in enumerate(lines, 1):
        item = _parse_json_line(n, line) if jsonl else BatchItem(f"{n:06d}", line)
        if item.error is None and item.id in seen:
            item = BatchItem(f"line-{n:06d}", item.text, error=f"duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


def _parse_json_line(n: int, line: str) -> BatchItem:
    fallback = f"line-{n:06d}"
    if not line.strip():
        return BatchItem(fallback, "", error="empty line")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return BatchItem(fallback, "", error=f"not JSON: {e.msg} at column {e.colno}")
    if not isinstance(obj, dict):
        return BatchItem(fallback, "", error="a JSONL line must be an object")
    raw_id = obj.get("id", fallback)
    item_id = str(raw_id) if isinstance(raw_id, (str, int)) else ""
    if not _ID.match(item_id):
        return BatchItem(fallback, "", error=f"id {raw_id!r} is not a file-safe name ([A-Za-z0-9._-], ≤128)")
    text = obj.get("text")
    if not isinstance(text, str):
        return BatchItem(item_id, "", error="'text' must be a string")
    unknown = sorted(set(obj) - {"id", "text", *_OPTION_KEYS})
    if unknown:
        return BatchItem(item_id, text, error=f"unknown keys {unknown}; allowed: id, text, {', '.join(_OPTION_KEYS)}")
    return BatchItem(item_id, text, {k: obj[k] for k in _OPTION_KEYS if k in obj})


# ---- resume ------------------------------------------------------------------------------------
def read_index(outdir: Path) -> dict[str, dict[str, Any]]:
    """The last valid index line per id (a torn last line from a killed run is ignored)."""
    records: dict[str, dict[str, Any]] = {}
    path = outdir / INDEX
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                records[rec["id"]] = rec
    return records


def is_done(outdir: Path, record: dict[str, Any] | None) -> bool:
    """True when the index says ok and the WAV is there, readable, with the recorded length."""
    if not record or record.get("status") != "ok":
        return False
    import soundfile as sf

    try:
        info = sf.info(str(outdir / record["file"]))
    except (RuntimeError, OSError, KeyError, TypeError):
        return False
    return info.samplerate == record.get("sample_rate") and abs(info.duration - float(record["seconds"])) < 1e-2


# ---- the work of one item (runs in a worker process or a Ray actor) ----------------------------
def run_setup_hook() -> None:
    """Call the function $SPEEDY_BATCH_SETUP names ("module:function"), if set, in this process."""
    target = os.environ.get(SETUP_ENV)
    if target:
        module, attr = target.split(":")
        getattr(importlib.import_module(module), attr)()


def load_worker_synthesizer(artifact: str | None, threads: int) -> Any:
    """What every worker does once: the setup hook, then Synthesizer.load and a warm-up."""
    from speedy.synth import Synthesizer

    run_setup_hook()
    synthesizer = Synthesizer.load(artifact, threads=threads)
    synthesizer.warm_up()
    return synthesizer


def synth_item(
    synthesizer: Any, item_id: str, text: str, options: dict[str, Any], max_chars: int
) -> tuple[dict[str, Any], bytes]:
    """Synthesise one item → (index record, little-endian int16 PCM); bad input is a record with status error."""
    from speedy.controls import SynthesisOptions
    from speedy.synth import to_int16

    record: dict[str, Any] = {
        "id": item_id,
        "file": None,
        "seconds": 0.0,
        "sample_rate": synthesizer.sample_rate,
        "status": "error",
        "error": None,
    }
    try:
        if len(text) > max_chars:
            raise InputError(f"text has {len(text)} characters; the limit is {max_chars}")
        opts = SynthesisOptions(**{k: v for k, v in options.items() if v is not None})
        result = synthesizer.synthesize(text, opts)
    except (SpeedyError, TypeError) as e:
        record["error"] = str(e)
        return record, b""
    record.update(file=f"{item_id}.wav", seconds=round(result.duration_s, 4), status="ok")
    return record, to_int16(result.audio).tobytes()


_WORKER: dict[str, Any] = {}


def _init_worker(artifact: str | None, threads: int, max_chars: int) -> None:
    _WORKER["max_chars"] = max_chars
    try:
        _WORKER["synth"] = load_worker_synthesizer(artifact, threads)
    except Exception as e:  # reported by the first item, so the driver fails with one line, not BrokenProcessPool
        _WORKER["failed"] = (
            e if isinstance(e, SpeedyError) else ModelError(f"worker failed to load: {type(e).__name__}: {e}")
        )


def _work(item_id: str, text: str, options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    if "failed" in _WORKER:
        raise _WORKER["failed"]
    return synth_item(_WORKER["synth"], item_id, text, options, _WORKER["max_chars"])


# ---- runners -----------------------------------------------------------------------------------
Result = tuple[dict[str, Any], bytes]


def _local_results(items: list[BatchItem], config: BatchConfig) -> Iterator[Result]:
    """Worker processes (spawned: fresh interpreters, as Ray's are) with a bounded window of pending items."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pending: set[Any] = set()
    todo = iter(items)
    with ProcessPoolExecutor(
        config.workers,
        mp_context=mp.get_context("spawn"),
        initializer=_init_worker,
        initargs=(config.artifact, config.threads, config.max_chars),
    ) as pool:
        while True:
            while len(pending) < 4 * config.workers and (item := next(todo, None)) is not None:
                pending.add(pool.submit(_work, item.id, item.text, item.options))
            if not pending:
                return
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                yield f.result()


class RaySynthActor:
    """A Ray Data actor: one Synthesizer loaded in __init__, a batch of rows → records + PCM per call."""

    def __init__(self, artifact: str | None, threads: int, max_chars: int) -> None:
        self.synth = load_worker_synthesizer(artifact, threads)
        self.max_chars = max_chars

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        records, pcm = [], []
        for item_id, text, options in zip(batch["id"], batch["text"], batch["options"]):
            rec, audio = synth_item(self.synth, str(item_id), str(text), json.loads(str(options)), self.max_chars)
            records.append(json.dumps(rec, ensure_ascii=False))
            pcm.append(audio)
        return {"record": records, "pcm": pcm}


def import_ray() -> Any:
    """`import ray`, or MissingExtraError (exit 3) naming the 'ray' extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingExtraError("ray", "ray", "--ray") from None
    return ray


def _ray_results(items: list[BatchItem], config: BatchConfig) -> Iterator[Result]:
    """A Ray Data pipeline: from_items → map_batches(RaySynthActor, ActorPoolStrategy(size=workers),
    num_cpus=threads), streamed back to the driver in completion order."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in (SETUP_ENV, "PYTHONPATH") if k in os.environ}
        address = None if config.ray == "local" else config.ray
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="WARNING",
            runtime_env={"env_vars": env} if env else None,
        )
        started = True
    try:
        import logging

        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ray.data.DataContext.get_current().enable_progress_bars = False
        blocks = max(1, min(len(items), -(-len(items) // config.batch_size)))
        ds = ray.data.from_items(
            [{"id": i.id, "text": i.text, "options": json.dumps(i.options, ensure_ascii=False)} for i in items],
            override_num_blocks=blocks,
        )
        ds = ds.map_batches(
            RaySynthActor,
            fn_constructor_kwargs={
                "artifact": config.artifact,
                "threads": config.threads,
                "max_chars": config.max_chars,
            },
            batch_size=config.batch_size,
            compute=ray.data.ActorPoolStrategy(size=config.workers),
            num_cpus=config.threads,
            batch_format="numpy",
        )
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
                for rec, pcm in zip(batch["record"], batch["pcm"]):
                    yield json.loads(str(rec)), bytes(pcm)
        except Exception as e:  # an actor that cannot load: its SpeedyError as one line, not Ray's trace
            raise _speedy_cause(e) from None
    finally:
        if started:
            ray.shutdown()


def _speedy_cause(error: BaseException) -> SpeedyError:
    """The SpeedyError inside Ray's wrapped exceptions, else a ModelError with the first line."""
    seen: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in seen:
        if isinstance(e, SpeedyError):
            return e
        seen.append(e)
        e = getattr(e, "cause", None) or e.__cause__ or e.__context__
    text = str(error).strip().splitlines()
    for line in text:  # Ray sometimes keeps only the text: "speedy.errors.ModelError: ..."
        if "speedy.errors." in line and ": " in line:
            return ModelError(line.split(": ", 1)[1])
    return ModelError(f"the Ray pipeline failed: {type(error).__name__}: {text[0] if text else ''}")


# ---- driver ------------------------------------------------------------------------------------
def run_batch(
    input_path: Path,
    outdir: Path,
    config: BatchConfig,
    on_item: Callable[[dict[str, Any], int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Synthesise every not-yet-done item of INPUT into OUTDIR; returns the summary.

    on_start(n) is called with the number of items to run; on_item(record, remaining) after each item.
    At the end index.jsonl is rewritten (temp + rename) with exactly one line per input id, in input order.
    """
    items = read_items(input_path)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {outdir}: {e.strerror or e}") from None
    if not os.access(outdir, os.W_OK):
        raise OutputError(f"output folder {outdir} is not writable")
    index = read_index(outdir)
    done = {i.id for i in items if i.error is None and is_done(outdir, index.get(i.id))}
    todo = [i for i in items if i.id not in done and i.error is None]
    bad = [i for i in items if i.error is not None]
    runner = "local" if config.ray is None else f"ray:{config.ray}"
    if on_start is not None:
        on_start(len(todo) + len(bad))
    start = time.perf_counter()
    audio_s, errors, finished = 0.0, 0, 0
    first: float | None = None
    with open(outdir / INDEX, "a", encoding="utf-8") as log:

        def record(rec: dict[str, Any], pcm: bytes) -> None:
            nonlocal audio_s, errors, finished, first
            if rec["status"] == "ok":
                first = time.perf_counter() - start if first is None else first
                _write_pcm(outdir / rec["file"], pcm, rec["sample_rate"])
                audio_s += rec["seconds"]
            else:
                errors += 1
            log.write(json.dumps(rec, ensure_ascii=False) + "\n")
            log.flush()
            index[rec["id"]] = rec
            finished += 1
            if on_item is not None:
                on_item(rec, len(todo) + len(bad) - finished)

        for item in bad:
            record(
                {
                    "id": item.id,
                    "file": None,
                    "seconds": 0.0,
                    "sample_rate": None,
                    "status": "error",
                    "error": item.error,
                },
                b"",
            )
        if todo:
            results: Iterable[Result] = (_local_results if config.ray is None else _ray_results)(todo, config)
            for rec, pcm in results:
                record(rec, pcm)
    wall = time.perf_counter() - start
    _compact_index(outdir, [i.id for i in items], index)
    return BatchSummary(
        len(items),
        len(todo) - sum(1 for i in todo if index[i.id]["status"] != "ok"),
        len(done),
        errors,
        audio_s,
        wall,
        runner,
        str(outdir),
        first,
    )


def _write_pcm(out: Path, pcm: bytes, sample_rate: int) -> None:
    from speedy.synth import write_wav

    write_wav(out, np.frombuffer(pcm, dtype="<i2"), sample_rate)


def _compact_index(outdir: Path, order: list[str], index: dict[str, dict[str, Any]]) -> None:
    from speedy.synth import atomic_write

    lines = "".join(json.dumps(index[i], ensure_ascii=False) + "\n" for i in order if i in index)
    atomic_write(outdir / INDEX, lambda tmp: Path(tmp).write_text(lines, encoding="utf-8"))
