"""Measure every ttskit voice on 3 held-out eval sentences (FP32 ONNX): median F0 (pyworld dio +
stonemask), seconds per Han character (pauses included), DNSMOS OVRL. Usage:
    python examples/ttskit_voices.py ARTIFACT OUT.json [VOICE ...]
"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pyworld
from pathlib import Path
from speedy.synth import Synthesizer
from speedy.controls import SynthesisOptions
from speedy.quality import dnsmos
from speedy.families.ttskit import VOICES
root = Path(sys.argv[1]); out = Path(sys.argv[2])
SENTS = ["请把窗户关上好吗？", "这家餐厅需要提前预约吗？", "凌晨两点，城市终于安静了下来。"]
syn = Synthesizer.load(root, threads=1)
rows = []
for v in (sys.argv[3:] or VOICES):
    f0s, secs, chars, mos, nfr = [], 0.0, 0, [], []
    for s in SENTS:
        r = syn.synthesize(s, SynthesisOptions(voice=v))
        x = r.audio.astype(np.float64)
        f0, t = pyworld.dio(x, r.sample_rate); f0 = pyworld.stonemask(x, f0, t, r.sample_rate)
        f0s.append(f0[f0 > 0]); nfr.append(f0.size); secs += r.duration_s; chars += sum(1 for c in s if '\u4e00' <= c <= '\u9fff')
        mos.append(dnsmos(r.audio, r.sample_rate)["ovrl"])
    f = np.concatenate(f0s)
    row = {"voice": v, "median_f0": round(float(np.median(f)), 1) if f.size else None, "s_per_char": round(secs / chars, 3),
           "voiced": round(f.size / max(1, sum(nfr)), 2), "dnsmos_ovrl": round(float(np.mean(mos)), 3),
           "dnsmos_min": round(float(np.min(mos)), 3)}
    rows.append(row); print(json.dumps(row), flush=True)
out.write_text(json.dumps(rows, indent=1))
