#!/usr/bin/env bash
# OpenBLAS kernels: Debian 12's OpenBLAS 0.3.21 does not know some newer CPUs (Sapphire Rapids,
# or a VM reporting a generic model) and falls back to SSE3 "Prescott" kernels, 3-5x slower. The
# binary re-executes itself with OPENBLAS_CORETYPE set to what the CPU runs; an explicit
# OPENBLAS_CORETYPE, or US_BLAS_KEEP_KERNELS=1, is left alone.
source "$(dirname "$0")/lib.sh"

flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]]; }
if has avx512f && has avx512bw && has avx512dq && has avx512vl; then
  want='^(SkylakeX|Cooperlake|SapphireRapids)$'
elif has avx2 && has fma; then
  want='^(Haswell|Zen|SkylakeX|Cooperlake|SapphireRapids)$'
else
  echo "SKIP: this CPU has neither AVX-512 nor AVX2, so OpenBLAS's own choice is the right one"
  exit 77
fi

core_of() { sed -n 's/^OpenBLAS: \([A-Za-z0-9]*\) kernels.*/\1/p' <<<"$1"; }

# 1. left to itself, the binary runs kernels that use the CPU's widest vector unit
out=$(env -u OPENBLAS_CORETYPE -u US_BLAS_KEEP_KERNELS "$US_BIN" --version)
core=$(core_of "$out")
[[ $core =~ $want ]] || fail "expected kernels matching $want on this CPU, got '$core': $out"

# 2. what OpenBLAS picks on its own; when that was replaced, --version says so
kept_out=$(env -u OPENBLAS_CORETYPE US_BLAS_KEEP_KERNELS=1 "$US_BIN" --version)
kept=$(core_of "$kept_out")
[[ -n $kept ]] || fail "no kernel name in: $kept_out"
if [[ $kept != "$core" ]]; then
  grep -q "OpenBLAS alone picked $kept kernels for this CPU; understudy chose $core" <<<"$out" ||
    fail "the replacement of $kept by $core is not reported: $out"
else
  ! grep -q "alone picked" <<<"$out" || fail "reports a replacement that did not happen: $out"
fi

# 3. an explicit choice wins, and is not reported as understudy's
out=$(OPENBLAS_CORETYPE=Prescott "$US_BIN" --version)
[[ $(core_of "$out") == Prescott ]] || fail "OPENBLAS_CORETYPE=Prescott was not honoured: $out"
! grep -q "alone picked" <<<"$out" || fail "an explicit OPENBLAS_CORETYPE reported as ours: $out"

# 4. the re-exec keeps the arguments: a command after it still runs and fails as it should
set +e
err=$(env -u OPENBLAS_CORETYPE "$US_BIN" train /nonexistent/config.json 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "train with a missing config succeeded"
grep -q "/nonexistent/config.json" <<<"$err" || fail "the re-executed command lost its arguments: $err"
echo "ok: $core kernels (OpenBLAS alone: $kept)"
