#!/usr/bin/env bash
# Evaluate a checkpoint on several processes (one per GPU, or CPU processes
# with gloo) via torchrun. Usage:
#   [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [PORT=29500] [PYTHON=python] \
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options]
set -euo pipefail

[ "$#" -ge 3 ] || { echo "usage: bash $0 CONFIG CHECKPOINT GPUS [tools/test.py options]" >&2; exit 2; }
# dist_run.sh TOOL GPUS TOOL_ARGS...
exec bash "$(dirname "${BASH_SOURCE[0]}")/dist_run.sh" test.py "$3" "$1" "$2" "${@:4}"
