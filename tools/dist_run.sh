#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: run a tool on several processes
# (one per GPU, or CPU processes with gloo) via torchrun. Usage:
#   [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [PORT=29500] [PYTHON=python] \
#   bash tools/dist_run.sh TOOL GPUS [TOOL arguments]
# TOOL is a script in tools/ (train.py, test.py); GPUS is the number of
# processes on this node; for several nodes run the same command on every
# node with its NODE_RANK and the address of node 0.
set -euo pipefail

TOOL=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if [ -z "${PYTHON:-}" ]; then
    PYTHON=$(command -v python || command -v python3)
fi
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$TOOLS_DIR/$TOOL" --launcher pytorch "$@"
