#!/usr/bin/env bash
# System packages the test suite needs beyond Python (none yet for the core tests).
set -euo pipefail
exit 0
