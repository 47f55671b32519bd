"""ModelScope Sambert-HifiGan (KAN-TTS): six acoustic graphs chained by a host loop, plus HiFi-GAN.

Built from a ModelScope model folder (``speedy export --from-modelscope DIR``); no built-in weights.
Emotions of the ``*_emo`` voices are native embedding ids.
"""

from speedy.families import FamilySpec, frozen
from speedy.families.graph_spec import LoopCheck
from speedy.families.sambert.graphs import GRAPHS

SPEC = FamilySpec(
    name="sambert",
    families=("sambert-hifigan",),
    frontends=frozen({"sambert-kantts": "speedy.families.sambert.frontend"}),
    graphs=frozen(GRAPHS),
    compose="speedy.families.sambert.runtime:compose",
    # onnxruntime 1.32 crashes (SIGSEGV) creating a session at level "all" for the FP16 variance and postnet
    # graphs (FSMN convolutions + LSTM, Cast-wrapped by the FP16 converter); "extended" loads and runs them.
    fp16_max_level="extended",
    quantize="speedy.families.sambert.export:quantize_graphs",
    loop_check=LoopCheck("今天天气很好，我们一起去公园散步吧。", "durations", "durations equal"),
    export_plan="speedy.families.sambert.export:export_plan",
    from_folder="modelscope",
    native_emotions="speedy.families.sambert.frontend:is_native_emotion",
)
