"""The Sambert-HifiGan graphs: six acoustic pieces chained by the host loop (speedy.families.sambert.loop),
and HiFi-GAN. Plain data (no torch): what export writes, quantize and compile iterate over, and the runtime
opens for the loop."""

from speedy.families.graph_spec import Graphs, GraphSpec, OutputCheck

#: Parity per element and output: ``|onnx - torch| <= 1e-4 + 1e-3 * |torch|``.
CHECKS = (OutputCheck("*", "allclose", 1e-4, 1e-3),)
_T = {1: "symbols"}
_CACHE = {2: "steps"}

GRAPHS: Graphs = {
    "acoustic": (
        GraphSpec(
            "encoder",
            ("sy", "tone", "syllable_flag", "ws", "emotion", "speaker"),
            ("text", "emo", "spk"),
            {k: _T for k in ("sy", "tone", "syllable_flag", "ws", "emotion", "speaker", "text", "emo", "spk")},
            CHECKS,
        ),
        GraphSpec(
            "variance",
            ("text", "emo", "spk", "controls"),
            ("pitch", "energy", "text_aug", "cond"),
            {k: _T for k in ("text", "emo", "spk", "pitch", "energy", "text_aug", "cond")},
            CHECKS,
        ),
        GraphSpec("duration_step", ("prev", "cond", "h", "c"), ("log_dur", "h_out", "c_out"), {}, CHECKS),
        GraphSpec(
            "decoder_memory",
            ("lr_text", "dur_pos", "lr_emo", "lr_spk"),
            ("memory", "h_k", "h_v"),
            {
                **{k: {1: "frames"} for k in ("lr_text", "dur_pos", "lr_emo", "lr_spk")},
                "memory": {1: "steps"},
                "h_k": _CACHE,
                "h_v": _CACHE,
            },
            CHECKS,
        ),
        GraphSpec(
            "decoder_step",
            ("prev_frame", "memory_frame", "x_k", "x_v", "h_k", "h_v", "step", "x_band", "h_band"),
            ("frames", "new_k", "new_v"),
            {k: _CACHE for k in ("x_k", "x_v", "h_k", "h_v")},
            CHECKS,
        ),
        GraphSpec("postnet", ("dec_mel",), ("mel",), {"dec_mel": {1: "frames"}, "mel": {1: "frames"}}, CHECKS),
    ),
    "vocoder": (
        GraphSpec("vocoder", ("mel",), ("wav",), {"mel": {1: "frames"}, "wav": {1: "samples"}}, CHECKS, "vocoder"),
    ),
}
