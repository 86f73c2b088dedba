#!/usr/bin/env bash
# Train on several processes (one per GPU, or CPU processes with gloo) via
# torchrun. Usage:
#   [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [PORT=29500] [PYTHON=python] \
#   bash tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# GPUS is the number of processes on this node. For several nodes run the
# same command on every node with the same NNODES, MASTER_ADDR (the address
# of node 0; required when NNODES > 1) and PORT, and its own NODE_RANK (0 on
# node 0). Only rank 0 (on node 0) writes checkpoints. Evaluation during
# training gathers the ranks' results through files in ./.dist_test
# (mmengine's collect_device='cpu'): the nodes must share the working
# directory, or train with --no-validate and test afterwards.
set -euo pipefail

[ "$#" -ge 2 ] || { echo "usage: bash $0 CONFIG GPUS [tools/train.py options]" >&2; exit 2; }
# dist_run.sh TOOL GPUS TOOL_ARGS...
exec bash "$(dirname "${BASH_SOURCE[0]}")/dist_run.sh" train.py "$2" "$1" "${@:3}"
