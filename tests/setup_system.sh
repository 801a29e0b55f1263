#!/usr/bin/env bash
# What the test suite uses beyond Python, installed and started by the project:
#  - a single-node SLURM cluster (tests/slurm/start_slurm.sh: slurm-wlm + munge),
#  - Debian's Chromium and playwright-core (npm) for the HTML page tests,
#  - Debian's opencv-doc for its sample data (video frames, chessboard photographs:
#    other captures of one scene, tests/test_captures.py and bench/quality_bench.py).
# Where root/apt is impossible the tests that need them skip with a message.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
status=0

bash "$here/slurm/start_slurm.sh"
case $? in
    0) ;;
    3) echo "setup_system: SLURM unavailable here; tests/test_slurm.py will be skipped" ;;
    *) echo "setup_system: SLURM failed to start" >&2; status=1 ;;
esac

if [ ! -f /usr/share/color/icc/compatibleWithAdobeRGB1998.icc ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null; then
    # real ICC profiles for the colour-management test (tests/test_decode.py)
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends icc-profiles-free >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
            icc-profiles-free >/dev/null; } \
        || echo "setup_system: icc-profiles-free unavailable; the ICC test will be skipped"
fi

if [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends opencv-doc >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
            opencv-doc >/dev/null; } \
        || echo "setup_system: opencv-doc unavailable; tests/test_captures.py will be skipped"
fi

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
            || { echo "setup_system: chromium install failed" >&2; status=1; }
    else
        echo "setup_system: no root/apt: tests/test_html.py will be skipped"
    fi
fi
if command -v npm >/dev/null; then
    (cd "$here/browser" && npm ci --no-audit --no-fund --silent) \
        || { echo "setup_system: npm ci failed" >&2; status=1; }
else
    echo "setup_system: no npm: tests/test_html.py will be skipped"
fi
exit $status
