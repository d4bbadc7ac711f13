#!/usr/bin/env bash
# infra/README.md's walkthrough, run command for command: this script executes the README's block (the lines
# after `<!-- walkthrough -->`), so the two cannot drift. A blank home -> Prefect server, work pool, deployments,
# worker -> a synthetic delivery -> refresh -> train localizer and captioner -> promote -> evaluate -> caption a
# new study (deployment and CLI). Everything lives under $WORK (default: a new temporary folder).
#   infra/walkthrough.sh            (with the project's venv first on PATH, e.g. PATH=$PWD/.venv/bin:$PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

export WORK="${WORK:-$(mktemp -d)}"
export PORT="${PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export PREFECT_HOME="$WORK/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_WORKER_QUERY_SECONDS=1 PREFECT_WORKER_PREFETCH_SECONDS=5
# The demo config shrunk to seconds on a CPU (the same as the flow tests' tiny preset).
export TINY_LOCALIZER='{"loop.epochs": 1, "model.patch_size": [16, 16, 16], "model.encoder_channels": [8, 8, 16, 16], "model.embed_dim": 32, "model.text_width": 32, "model.text_layers": 1}'
export TINY_CAPTIONER='{"loop.epochs": 1, "model.patch_size": [16, 16, 16], "model.encoder_channels": [8, 16], "model.encoder_strides": [2, 2], "model.dim": 32, "model.encoder_layers": 1, "model.decoder_layers": 1, "method.beam_size": 1}'

stop_background() {
  local pids
  pids="$(jobs -p)"
  [ -z "$pids" ] && return 0
  kill -INT $pids 2>/dev/null || true      # a Prefect worker ignores SIGTERM
  for _ in $(seq 20); do kill -0 $pids 2>/dev/null || return 0; sleep 1; done
  kill -KILL $pids 2>/dev/null || true
}
trap stop_background EXIT

block="$(awk '/<!-- walkthrough -->/ {f = 1; next} f && /^```sh/ {g = 1; next} g && /^```/ {exit} g' infra/README.md)"
[ -n "$block" ] || { echo "walkthrough: no block after <!-- walkthrough --> in infra/README.md" >&2; exit 2; }
echo "walkthrough in $WORK (Prefect on port $PORT)"
eval "$block"
echo "walkthrough: done; captions in $WORK/captions and $WORK/captions-cli"
