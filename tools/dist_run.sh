#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: run a tool on several processes
# (one per GPU, or CPU processes with gloo) via torchrun. Usage:
#   [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [PORT=29500] [PYTHON=python] \
#   bash tools/dist_run.sh TOOL GPUS [TOOL arguments]
# TOOL is a script in tools/ (train.py, test.py); GPUS is the number of
# processes on this node. For several nodes run the same command on every
# node, with the same NNODES, MASTER_ADDR (the address of node 0, which every
# node can reach; required when NNODES > 1) and PORT, and NODE_RANK 0 on node
# 0 and 1 .. NNODES-1 on the others. Bad settings stop here with exit status
# 2 instead of a bare torchrun error or a rendezvous that waits forever.
set -euo pipefail

TOOL=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}

fail() {
    echo "error: $*" >&2
    exit 2
}
[[ $GPUS =~ ^[1-9][0-9]*$ ]] ||
    fail "GPUS=$GPUS: the number of processes on this node must be an integer >= 1."
[[ $NNODES =~ ^[1-9][0-9]*$ ]] ||
    fail "NNODES=$NNODES: the number of nodes must be an integer >= 1."
[[ $NODE_RANK =~ ^(0|[1-9][0-9]*)$ ]] && ((NODE_RANK < NNODES)) ||
    fail "NODE_RANK=$NODE_RANK is not in 0 .. $((NNODES - 1)) (NNODES=$NNODES); give node 0 (the one at MASTER_ADDR) NODE_RANK=0 and every other node its own rank."
if ((NNODES > 1)) && [ -z "${MASTER_ADDR:-}" ]; then
    fail "NNODES=$NNODES needs MASTER_ADDR, the address of node 0 that every node can reach (127.0.0.1 only when all nodes are this machine); set the same MASTER_ADDR and PORT on every node."
fi
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
