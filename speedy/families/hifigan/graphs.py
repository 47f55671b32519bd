"""The hifigan family's graphs: a vocoder only, compared by waveform SNR."""

from speedy.families.graph_spec import Graphs, GraphSpec, OutputCheck

GRAPHS: Graphs = {
    "vocoder": (
        GraphSpec(
            "vocoder",
            inputs=("mel",),
            outputs=("wav",),
            dynamic_axes={"mel": {0: "batch", 1: "frames"}, "wav": {0: "batch", 1: "samples"}},
            # The floor for every graph of this vocoder against its reference.
            checks=(OutputCheck("wav", "snr_db", 60.0),),
            role="vocoder",
        ),
    ),
}
