#!/usr/bin/env bash
# Compiles every shader variant with glslc and validates it with spirv-val.
# Usage: src/gpu/shaders/test_shaders.sh [output-dir]   (default: a temporary directory, removed)
# Exits non-zero on the first failure. Needs glslc (shaderc) and spirv-val (SPIRV-Tools).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GLSLC="${GLSLC:-glslc}"
SPIRV_VAL="${SPIRV_VAL:-spirv-val}"
if [[ $# -ge 1 ]]; then
  out="$1"
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

# name:source:defines (defines space-separated, may be empty)
variants=(
  "matvec_f32:matvec.comp:-DW_F32"
  "matvec_f16:matvec.comp:-DW_F16"
  "matvec_bf16:matvec.comp:-DW_BF16"
  "matvec_q8:matvec.comp:-DW_Q8"
  "matvec_q4:matvec.comp:-DW_Q4"
  "matvec_f32_ln:matvec.comp:-DW_F32 -DLN_FUSED"
  "matvec_f16_ln:matvec.comp:-DW_F16 -DLN_FUSED"
  "matvec_bf16_ln:matvec.comp:-DW_BF16 -DLN_FUSED"
  "matvec_q8_ln:matvec.comp:-DW_Q8 -DLN_FUSED"
  "matvec_q4_ln:matvec.comp:-DW_Q4 -DLN_FUSED"
  "attn_split:attn_split.comp:"
  "attn_split_f16:attn_split.comp:-DKV_F16"
  "attn_combine:attn_combine.comp:"
  "layernorm:layernorm.comp:"
  "embed:embed.comp:"
  "attention:attention.comp:"
  "attention_f16:attention.comp:-DKV_F16"
  "attention_cephes:attention.comp:-DEXP_CEPHES"
  "attention_f16_cephes:attention.comp:-DKV_F16 -DEXP_CEPHES"
  "codec_rvq:codec_rvq.comp:"
  "codec_conv1d:codec_conv1d.comp:"
  "codec_conv_tr:codec_conv_tr.comp:"
  "codec_elu:codec_elu.comp:"
  "codec_add:codec_add.comp:"
  "codec_lstm_gates:codec_lstm_gates.comp:"
  "codec_lstm_cell:codec_lstm_cell.comp:"
)

fail=0
for v in "${variants[@]}"; do
  IFS=: read -r name src defs <<<"$v"
  spv="$out/$name.spv"
  # shellcheck disable=SC2086
  if ! "$GLSLC" --target-env=vulkan1.1 -O -fshader-stage=compute -I "$here" $defs \
       "$here/$src" -o "$spv"; then
    echo "FAIL compile: $name ($src $defs)" >&2
    fail=1
    continue
  fi
  if ! "$SPIRV_VAL" --target-env vulkan1.1 "$spv"; then
    echo "FAIL spirv-val: $name" >&2
    fail=1
    continue
  fi
  echo "ok  $name"
done
exit "$fail"
