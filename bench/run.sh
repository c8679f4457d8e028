#!/usr/bin/env bash
# Benchmark entry point (`npm run bench`): installs the load tools and the
# reference proxy when missing, then runs the TypeScript orchestrator.
# Environment: BENCH_QUICK=1, BENCH_ROUNDS, BENCH_SECONDS, BENCH_WARMUP,
# BENCH_PROTOCOLS, BENCH_TARGETS — see docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "$0")/.."

need=()
command -v nginx  >/dev/null 2>&1 || need+=(nginx)
command -v h2load >/dev/null 2>&1 || need+=(h2load)
command -v nghttp >/dev/null 2>&1 || need+=(nghttp)
command -v wrk    >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(taskset)

if ((${#need[@]})); then
  echo "bench: missing ${need[*]}; installing Debian packages" >&2
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
      echo "bench: not root and no sudo; install nginx-light nghttp2-client wrk util-linux yourself" >&2
      exit 1
    fi
  fi
  pkgs=()
  for t in "${need[@]}"; do
    case "$t" in
      nginx) pkgs+=(nginx-light) ;;
      h2load|nghttp) pkgs+=(nghttp2-client) ;;
      wrk) pkgs+=(wrk) ;;
      taskset) pkgs+=(util-linux) ;;
    esac
  done
  # de-duplicate
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  export DEBIAN_FRONTEND=noninteractive
  # An empty package cache means `apt-get update` was never run here.
  if ! apt-cache policy "${pkgs[0]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    "${SUDO[@]}" apt-get update -qq
  fi
  if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2; then
    # nginx-light is not in every release; fall back to nginx.
    pkgs=("${pkgs[@]/nginx-light/nginx}")
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
  fi
  # The Debian package starts a system nginx on :80; the bench runs its own.
  if command -v systemctl >/dev/null 2>&1; then "${SUDO[@]}" systemctl stop nginx >/dev/null 2>&1 || true; fi
fi

node --import tsx bench/run.ts "$@"
# The load-balancing comparison (bench/lb.ts, docs/benchmarks.md#load-balancing), bounded to 110 s; BENCH_LB=0 skips it.
case " $* " in *" --help "*|*" -h "*) exit 0 ;; esac
if [ "${BENCH_LB:-1}" != "0" ]; then node --import tsx bench/lb.ts; fi
# The security filter chain's cost (bench/filters.ts, docs/benchmarks.md#filters); BENCH_FILTERS=0 skips it.
if [ "${BENCH_FILTERS:-1}" != "0" ]; then node --import tsx bench/filters.ts; fi
# Discovery at scale (bench/discovery.ts, docs/discovery.md#scale): 1,000 Services x 10 endpoints, 100 sidecars; BENCH_DISCOVERY=0 skips it.
if [ "${BENCH_DISCOVERY:-1}" != "0" ]; then node --import tsx bench/discovery.ts; fi
# Server-streaming messages/s through the sidecar against direct (bench/streaming.ts, docs/benchmarks.md#server-streaming); BENCH_STREAMING=0 skips it.
if [ "${BENCH_STREAMING:-1}" != "0" ]; then node --import tsx bench/streaming.ts; fi
# What tracing costs per gRPC request, off / 1 % / 100 % (bench/tracing.ts, docs/observability.md#tracing); BENCH_TRACING=0 skips it.
if [ "${BENCH_TRACING:-1}" != "0" ]; then exec node --import tsx bench/tracing.ts; fi
