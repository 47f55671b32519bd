"""TensorRT backend (format "tensorrt"): the runner of engines built by `speedy compile --backend tensorrt`
(speedy.stages.compile_trt).

Needs the `tensorrt` extra (tensorrt + pycuda) and a CUDA GPU; both are imported inside the functions
that need them, and a missing one is a one-line `MissingExtraError` / `ModelError` (exit 3). The
acoustic model's mel length is data-dependent (Σ durations), so the runner takes outputs through an
`IOutputAllocator`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.controls import GraphControls
from speedy.errors import MissingExtraError, ModelError

ENGINE_SUFFIX = ".engine"


def require_gpu() -> str:
    """Import tensorrt and pycuda and find a CUDA GPU; returns its name. MissingExtraError / ModelError (exit 3)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise MissingExtraError("tensorrt", "tensorrt", "the tensorrt backend") from None
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise MissingExtraError("pycuda", "tensorrt", "the tensorrt backend") from None
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            raise ModelError("the tensorrt backend needs a CUDA GPU; none was found")
        return str(cuda.Device(0).name())
    except cuda.Error as e:
        raise ModelError(f"the tensorrt backend needs a CUDA GPU; CUDA says: {e}") from None


# ---- runtime ---------------------------------------------------------------------------------------


class TensorRTEngine:
    """A deserialized engine on GPU 0: `run({input: array}) -> {output: array}` (host numpy in and out).

    Outputs go through an IOutputAllocator, so data-dependent output shapes (the acoustic model's
    mel frames) are allocated once their size is known.
    """

    def __init__(self, path: Path) -> None:
        require_gpu()
        import pycuda.autoprimaryctx  # noqa: F401  (makes the primary context current)
        import pycuda.driver as cuda
        import tensorrt as trt

        self.trt, self.cuda = trt, cuda
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise ModelError(
                f"{Path(path).name}: TensorRT cannot deserialize it (built for another GPU or "
                "TensorRT version? compile it again on this machine)"
            )
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.allocators = {n: _output_allocator(trt, cuda) for n in self.outputs}
        for n, a in self.allocators.items():
            self.context.set_output_allocator(n, a)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy `feeds` to the GPU, execute, and copy every output back (shapes as the engine reports)."""
        trt, cuda = self.trt, self.cuda
        keep = []
        for name, arr in feeds.items():
            host = np.ascontiguousarray(arr, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_input_shape(name, host.shape)
            dev = cuda.mem_alloc(max(host.nbytes, 1))
            cuda.memcpy_htod_async(dev, host, self.stream)
            self.context.set_tensor_address(name, int(dev))
            keep.append(dev)
        if not self.context.execute_async_v3(self.stream.handle):
            raise ModelError("TensorRT execution failed (an input outside the engine's profile?)")
        self.stream.synchronize()
        out = {}
        for name, alloc in self.allocators.items():
            host = np.empty(tuple(alloc.shape), dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            if host.nbytes:
                cuda.memcpy_dtoh(host, alloc.ptr)
            out[name] = host
        return out


def _output_allocator(trt: Any, cuda: Any) -> Any:
    class OutputAllocator(trt.IOutputAllocator):
        def __init__(self) -> None:
            super().__init__()
            self.mem: Any = None
            self.size = 0
            self.shape: tuple[int, ...] = ()

        @property
        def ptr(self) -> int:
            return int(self.mem)

        def reallocate_output(self, name: str, memory: int, size: int, alignment: int) -> int:
            if size > self.size or self.mem is None:
                self.mem, self.size = cuda.mem_alloc(max(size, 1)), max(size, 1)
            return int(self.mem)

        def reallocate_output_async(self, name: str, memory: int, size: int, alignment: int, stream: int) -> int:
            return self.reallocate_output(name, memory, size, alignment)

        def notify_shape(self, name: str, shape: Any) -> None:
            self.shape = tuple(shape)

    return OutputAllocator()


class _Acoustic:
    def __init__(self, engine: TensorRTEngine, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        self.engine, (self.ids_name, *self.control_names), self.outputs = engine, inputs, outputs

    def __call__(self, ids: np.ndarray, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]:
        """ids (1, T) int64; controls by name → mel (1, L, n_mels) float32, durations (1, T) int64."""
        feed = {self.ids_name: ids, **controls.feeds(self.control_names)}
        got = self.engine.run(feed)
        return got[self.outputs[0]].astype(np.float32), got[self.outputs[1]].astype(np.int64)


class _Vocoder:
    def __init__(self, engine: TensorRTEngine, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        self.engine, self.inp, self.out = engine, inputs[0], outputs[0]

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """mel (B, L, n_mels) float32 → waveform (B, L·hop) float32 (one engine call per item: batch-1 profile)."""
        wavs = [self.engine.run({self.inp: mel[i : i + 1]})[self.out].reshape(1, -1) for i in range(mel.shape[0])]
        return np.concatenate(wavs).astype(np.float32)


def load_component(manifest: Manifest, name: str, root: Path, options: Any) -> _Acoustic | _Vocoder:
    """Format "tensorrt": deserialize the component's engine on GPU 0 (exit 3 without the extra or a GPU)."""
    comp = manifest.components[name]
    engine = TensorRTEngine(Path(root) / comp.file)
    cls = _Acoustic if name == "acoustic" else _Vocoder
    return cls(engine, comp.inputs, comp.outputs)
