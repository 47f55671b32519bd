"""FP32 vs quantized ttskit artifacts, interleaved in one process, 2 threads: median RTF (total, acoustic,
vocoder) on 3 eval sentences × ROUNDS, then DNSMOS OVRL over 6 voices × 3 sentences. Usage:
    python examples/ttskit_int8.py FP32_ARTIFACT ROUNDS OTHER_ARTIFACT ...
($DNSMOS=0: speed only.)
Quantized artifacts: `speedy quantize SRC -o OUT --recipe int8-dynamic` (decoder step + postnet), or other
graphs: speedy.stages.quantize.quantize(src, out, QuantRecipe.int8_dynamic(), graphs=("decoder_step", ...)).
"""
import json, os, sys, time, statistics as st, warnings
warnings.filterwarnings("ignore")
import numpy as np
from pathlib import Path
from speedy.synth import Synthesizer
from speedy.controls import SynthesisOptions
from speedy.quality import dnsmos
arts = {"fp32": Path(sys.argv[1])}
for a in sys.argv[3:]: arts[Path(a).name] = Path(a)
rounds = int(sys.argv[2])
SENTS = ["这本书非常有意思！", "凌晨两点，城市终于安静了下来。", "从这儿到海边开车大概要多长时间？"]
VOICES = ["Aiyue", "Xiaogang", "biaobei", "Aibao", "Xiaoxue", "Aicheng"]
syn = {k: Synthesizer.load(p, threads=2) for k, p in arts.items()}
for s in syn.values(): s.synthesize("你好。")
times = {k: {"total": [], "acoustic": [], "vocoder": []} for k in arts}
for r in range(rounds):
    for k in (arts if r % 2 == 0 else list(arts)[::-1]):
        for sent in SENTS:
            res = syn[k].synthesize(sent, SynthesisOptions(voice="Aiyue"))
            times[k]["total"].append(res.wall_s / res.duration_s)
            times[k]["acoustic"].append(res.acoustic_s / res.duration_s)
            times[k]["vocoder"].append(res.vocoder_s / res.duration_s)
out = {k: {m: round(st.median(v), 4) for m, v in d.items()} for k, d in times.items()}
for k in list(arts)[1:]:
    out[k]["speedup"] = {m: round(out["fp32"][m] / out[k][m], 2) for m in ("total", "acoustic", "vocoder")}
mos = {k: [] for k in arts}; dur = {k: [] for k in arts}
if os.environ.get("DNSMOS") == "0":
    VOICES = []
for v in VOICES:
    for sent in SENTS:
        for k in arts:
            res = syn[k].synthesize(sent, SynthesisOptions(voice=v))
            mos[k].append(dnsmos(res.audio, res.sample_rate)["ovrl"]); dur[k].append(res.duration_s)
for k in (arts if VOICES else []):
    out[k]["dnsmos"] = round(float(np.mean(mos[k])), 3)
    out[k]["dnsmos_delta"] = round(float(np.mean(mos[k]) - np.mean(mos["fp32"])), 3)
    out[k]["worst_utt_delta"] = round(float(min(np.array(mos[k]) - np.array(mos["fp32"]))), 3)
    out[k]["duration_ratio"] = round(sum(dur[k]) / sum(dur["fp32"]), 3)
print(json.dumps(out, indent=1))
