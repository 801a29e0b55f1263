#!/usr/bin/env bash
# System services the test suite uses beyond Python: a single-node SLURM cluster.
# Where root/apt is impossible the tests that need them skip with a message.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/slurm/start_slurm.sh"
case $? in
    0) ;;
    3) echo "setup_system: SLURM unavailable here; tests/test_slurm.py will be skipped" ;;
    *) echo "setup_system: SLURM failed to start" >&2; exit 1 ;;
esac
