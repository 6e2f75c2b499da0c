#!/usr/bin/env bash
# One entry point for set-up and the project's jobs. Creates .venv on first use (pinned by
# constraints.txt to the torch/torchvision/zennit wheels on this machine) and reuses it after.
#
#   bash scripts/dev.sh demo     # the main job: train a small CNN on sklearn's digits, explain, write a gallery
#   bash scripts/dev.sh test     # the test suite (what .ci/run runs): against zennit 0.5.1, then zennit 1.0.0,
#                                # then the `heavy` group (Ray, LXT, Quantus, transformers) once
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

# zennit 1.0.0 declares Python >= 3.11.11 (this machine has 3.11.7) but runs on it: its wheel (pure Python) is
# installed, without dependencies, into a folder that shadows the venv's zennit 0.5.1 on PYTHONPATH.
ZENNIT1="$VENV/zennit-1.0.0"
zennit1() {
    if [ ! -f "$ZENNIT1/zennit/__init__.py" ]; then
        echo "[dev.sh] fetching zennit 1.0.0 for the second test pass" >&2
        rm -rf "$ZENNIT1" "$ZENNIT1.wheel"
        "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            --python-version 3.12 zennit==1.0.0 -d "$ZENNIT1.wheel"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python \
            --target "$ZENNIT1" "$ZENNIT1.wheel"/zennit-1.0.0-*.whl
    fi
}

# The `heavy` test group's packages (pyproject's `heavy` extra) are installed on first use, not by set-up.
HEAVY_STAMP="$VENV/.composer-heavy"
heavy() {
    if [ "$(cat "$HEAVY_STAMP" 2>/dev/null)" != "$WANT" ]; then
        echo "[dev.sh] installing the heavy test group's packages" >&2
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[heavy]"
        # LXT (the AttnLRP reference) without its requirements (bitsandbytes, open_clip, accelerate): the tests need none
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt "lxt==2.1"
        echo "$WANT" > "$HEAVY_STAMP"
    fi
}

job="${1:-test}"
shift || true
export PYTHONDONTWRITEBYTECODE=1
case "$job" in
    demo)  exec "$VENV/bin/composer" demo "$@" ;;
    test)
        echo "== the suite against zennit $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("zennit"))') ==" >&2
        "$VENV/bin/python" -m pytest -m "not heavy" "$@"
        zennit1
        PYTHONPATH="$ZENNIT1" "$VENV/bin/python" -c 'import importlib.metadata as m, zennit
assert m.version("zennit") == "1.0.0" and "zennit-1.0.0" in zennit.__file__, zennit.__file__'
        echo "== the suite against zennit 1.0.0 ==" >&2
        PYTHONPATH="$ZENNIT1" "$VENV/bin/python" -m pytest -p no:cacheprovider -m "not heavy" "$@"
        heavy
        echo "== the heavy group (zennit $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("zennit"))')) ==" >&2
        "$VENV/bin/python" -m pytest -p no:cacheprovider -m heavy "$@" || [ $? -eq 5 ] ;;
    test-0.5) exec "$VENV/bin/python" -m pytest "$@" ;;
    bench) exec "$VENV/bin/python" -m benchmarks.run "$@" ;;
    docs)  exec "$VENV/bin/python" -m mkdocs build --strict "$@" ;;
    shell) exec bash --rcfile <(echo "source $VENV/bin/activate") ;;
    *) echo "usage: bash scripts/dev.sh {demo|test|test-0.5|bench|docs|shell} [args]" >&2; exit 2 ;;
esac
