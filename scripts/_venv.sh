# Sourced by scripts/test and scripts/main: create .venv and install the package into it.
# Usage: ensure_venv EXTRAS   (e.g. ensure_venv all,test; empty for the core install only)
ensure_venv() {
    local extras="$1"
    local py="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        "$py" -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23.2"
    if [ -n "$extras" ]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
    else
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
    fi
    # Bytecode now, as a regular (non-editable) install does: otherwise every console
    # command compiles what it imports on each start when PYTHONDONTWRITEBYTECODE is set.
    .venv/bin/python -m compileall -q src/cc_executor >/dev/null || true
}
