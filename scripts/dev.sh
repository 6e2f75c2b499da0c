#!/usr/bin/env bash
# One entry point for set-up and the project's jobs. Creates .venv on first use (pinned by
# constraints.txt to the torch/torchvision/zennit wheels on this machine) and reuses it after.
#
#   bash scripts/dev.sh demo     # the main job: train a small CNN on sklearn's digits, explain, write a gallery
#   bash scripts/dev.sh test     # the test suite (what .ci/run runs)
#   bash scripts/dev.sh bench    # benchmarks (python -m benchmarks.run; pass --quick, --device cuda ...)
#   bash scripts/dev.sh docs     # mkdocs build --strict
#   bash scripts/dev.sh shell    # a shell with .venv activated
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP="$VENV/.composer-setup"
WANT="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "[dev.sh] setting up $VENV (first run installs torch from local wheels: a few minutes)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt \
        torch==2.14.1 torchvision==0.29.1 zennit==0.5.1
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,cli,docs]"
    echo "$WANT" > "$STAMP"
fi

job="${1:-test}"
shift || true
export PYTHONDONTWRITEBYTECODE=1
case "$job" in
    demo)  exec "$VENV/bin/composer" demo "$@" ;;
    test)  exec "$VENV/bin/python" -m pytest "$@" ;;
    bench) exec "$VENV/bin/python" -m benchmarks.run "$@" ;;
    docs)  exec "$VENV/bin/python" -m mkdocs build --strict "$@" ;;
    shell) exec bash --rcfile <(echo "source $VENV/bin/activate") ;;
    *) echo "usage: bash scripts/dev.sh {demo|test|bench|docs|shell} [args]" >&2; exit 2 ;;
esac
