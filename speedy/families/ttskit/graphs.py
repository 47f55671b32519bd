"""The ttskit graphs: encoder, decoder step and postnet (chained by the host loop in
speedy.families.ttskit.loop) and MelGAN. Plain data (no torch): what export writes, quantize and compile
iterate over, and the runtime opens for the loop."""

from types import MappingProxyType

from speedy.families.graph_spec import Graphs, GraphSpec, OutputCheck

#: Per-graph max |Δ| of ONNX Runtime against PyTorch, over every output.
CHECKS = (OutputCheck("*", "max_abs", 1e-4),)
#: ORT session config recorded on every component: pool threads sleep instead of spinning between ops. On the
#: shared 2-core machine the vocoder ran 1.2–1.4× faster so (spinning threads of one session took the cores
#: the other thread needed; README.md).
SESSION_CONFIG = MappingProxyType({"session.intra_op.allow_spinning": "0"})
#: Intra-op threads cap on the host loop's graphs (read by speedy.runtime.onnx_backend.component_session):
#: the decoder step is ≈ 100 tiny sequential ops per frame, where a second thread adds a pool hand-off per
#: op; one thread ran its steps 2–3× faster on the shared 2-core machine (README.md).
_LOOP = MappingProxyType({"session_config": SESSION_CONFIG, "max_threads": 1})
STEP_INPUTS = (
    "frame",
    "prenet_mask",
    "att_h",
    "att_c",
    "dec_h",
    "dec_c",
    "att_w",
    "att_wcum",
    "context",
    "memory",
    "processed",
    "att_bias",
)
STEP_OUTPUTS = (
    "frame_out",
    "gate",
    "att_h_out",
    "att_c_out",
    "dec_h_out",
    "dec_c_out",
    "att_w_out",
    "att_wcum_out",
    "context_out",
)

GRAPHS: Graphs = {
    "acoustic": (
        GraphSpec(
            "encoder",
            ("ids", "speaker"),
            ("memory", "processed"),
            {"ids": {1: "symbols"}, "memory": {1: "symbols"}, "processed": {1: "symbols"}},
            CHECKS,
            extra=_LOOP,
        ),
        GraphSpec(
            "decoder_step",
            STEP_INPUTS,
            STEP_OUTPUTS,
            {
                n: {1: "symbols"}
                for n in ("att_w", "att_wcum", "memory", "processed", "att_bias", "att_w_out", "att_wcum_out")
            },
            CHECKS,
            extra=_LOOP,
        ),
        GraphSpec(
            "postnet", ("mel",), ("mel_post",), {"mel": {1: "frames"}, "mel_post": {1: "frames"}}, CHECKS, extra=_LOOP
        ),
    ),
    "vocoder": (
        GraphSpec(
            "vocoder",
            ("mel",),
            ("wav",),
            {"mel": {0: "batch", 1: "frames"}, "wav": {0: "batch", 1: "samples"}},
            CHECKS,
            "vocoder",
            MappingProxyType({"session_config": SESSION_CONFIG}),
        ),
    ),
}
