#!/usr/bin/env bash
# A CI pipeline over the default voice: every stage must succeed, or the build fails with the stage's
# exit code (2 bad input, 3 bad model/artifact, 4 output not writable). Usage: ci-pipeline.sh OUTDIR
set -euo pipefail
out=${1:-artifacts}
speedy=${SPEEDY:-.venv/bin/speedy}
threads=${THREADS:-2}
mkdir -p "$out"

stage() {  # stage NAME CMD...: run one stage, keep its JSON, fail loudly with its exit code
  local name=$1; shift
  echo "== $name" >&2
  local rc=0
  "$@" --json > "$out/$name.json" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "stage '$name' failed (exit $rc)" >&2
    exit "$rc"
  fi
}

stage export      "$speedy" export -o "$out/onnx" --force --threads "$threads"
stage int8-static "$speedy" quantize "$out/onnx" -o "$out/int8-static" --recipe int8-static --force
stage int8-hybrid "$speedy" quantize "$out/onnx" -o "$out/int8-hybrid" --recipe int8-hybrid --force
stage fp16        "$speedy" quantize "$out/onnx" -o "$out/fp16" --recipe fp16 --force
stage mixed       "$speedy" quantize "$out/onnx" -o "$out/mixed" --recipe mixed --force
stage auto        "$speedy" quantize "$out/onnx" -o "$out/auto" --recipe auto --threads "$threads" --force
stage compiled    "$speedy" compile "$out/int8-hybrid" -o "$out/compiled" --backend onnxruntime --threads "$threads" --force
# OpenVINO (the `openvino` extra): f32 and INT8 everywhere, bf16 where the CPU has AVX512_BF16 or AMX (compile
# refuses it elsewhere, exit 2), and auto across both backends, which places each component where it is fastest.
made=(onnx int8-static int8-hybrid fp16 mixed auto compiled openvino-f32 openvino-int8 auto-ov)
stage openvino-f32  "$speedy" compile "$out/onnx" -o "$out/openvino-f32" --backend openvino --precision fp32 --threads "$threads" --force
stage openvino-int8 "$speedy" compile "$out/onnx" -o "$out/openvino-int8" --backend openvino --precision int8 --threads "$threads" --force
if grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null; then
  stage openvino-bf16 "$speedy" compile "$out/onnx" -o "$out/openvino-bf16" --backend openvino --precision bf16 --threads "$threads" --force
  made+=(openvino-bf16)
fi
stage auto-ov     "$speedy" quantize "$out/onnx" -o "$out/auto-ov" --recipe auto --backends onnxruntime,openvino --threads "$threads" --force
for a in "${made[@]}"; do
  stage "info-$a" "$speedy" info "$out/$a"
done
echo "pipeline OK: $(ls "$out" | tr '\n' ' ')" >&2
