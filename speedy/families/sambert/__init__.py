"""ModelScope Sambert-HifiGan (KAN-TTS): six acoustic graphs chained by a host loop, plus HiFi-GAN.

Built from a ModelScope model folder (``speedy export --from-modelscope DIR``); no built-in weights.
Emotions of the ``*_emo`` voices are native embedding ids.
"""

from speedy.families import FamilySpec, frozen
from speedy.families.graph_spec import GraphQuant, LoopCheck
from speedy.families.sambert.graphs import GRAPHS

#: Check sentence of the host loop: compile's loop check and the INT8 report's loop error (held out of calibration).
CHECK_TEXT = "今天天气很好，我们一起去公园散步吧。"

#: INT8 per graph: dynamic needs no data; static calibrates each graph on its inputs recorded from the FP32 host
#: loop over the calibration text.
INT8 = GraphQuant(
    recipes=("int8-dynamic", "int8-static"),
    hint="use int8-dynamic, int8-static or fp16 (int8-hybrid needs single-graph acoustic models)",
    # The duration LSTM is a few kFLOPs per symbol and feeds its own output back (a rounding flip changes a
    # duration): nothing to gain.
    float_graphs=("duration_step",),
    # decoder_step's MatMuls are the attention/KV path (x/h K/V projections, scores), whose output feeds the next
    # step through the cache. Measured on the 16 kHz-size fixture (random weights, 40 symbols, mel error
    # ‖Δ‖/‖mel‖ vs FP32, durations unchanged in every case): dynamic INT8 of Conv+MatMul in the frame-rate graphs
    # 1.15 % with decoder_step quantized vs 0.18 % with it float; Conv only (the FFN) 0.15 % vs 0.05 % (dynamic)
    # and 0.24 % vs 0.08 % (static). The error does not grow along the utterance (last quarter ≈ whole), but the
    # KV path costs 6×, so it stays float.
    float_ops=frozen({"decoder_step": ("MatMul",)}),
    # What the recipes' node scopes (written for FastSpeech2/MB-MelGAN) mean here: "acoustic" scopes restrict INT8
    # to the frame-rate graphs after the length regulator (durations never change), and the vocoder's to
    # HiFi-GAN's residual blocks (where MB-MelGAN's "/stacks" hold its compute).
    scoped_graphs=("decoder_memory", "decoder_step", "postnet"),
    vocoder_scopes=("/conv_blocks",),
    # Calibration keeps every k-th call of the step graphs, ≈ 24 per sentence, to bound memory (≈ 4 decoder steps
    # per symbol).
    step_rates=frozen({"duration_step": 1, "decoder_step": 4}),
    calib_steps=24,
    # The voice's four main emotions (speedy.families.sambert.frontend.LABELS), cycled so that every emotion
    # embedding is seen.
    calib_emotions=("中性", "喜悦", "悲伤", "愤怒"),
    check_text=CHECK_TEXT,
)

SPEC = FamilySpec(
    name="sambert",
    families=("sambert-hifigan",),
    frontends=frozen({"sambert-kantts": "speedy.families.sambert.frontend"}),
    graphs=frozen(GRAPHS),
    compose="speedy.families.sambert.runtime:compose",
    # onnxruntime 1.32 crashes (SIGSEGV) creating a session at level "all" for the FP16 variance and postnet
    # graphs (FSMN convolutions + LSTM, Cast-wrapped by the FP16 converter); "extended" loads and runs them.
    fp16_max_level="extended",
    int8=INT8,
    loop_check=LoopCheck(CHECK_TEXT, "durations", "durations equal"),
    export_plan="speedy.families.sambert.export:export_plan",
    from_folder="modelscope",
    native_emotions="speedy.families.sambert.frontend:is_native_emotion",
)
