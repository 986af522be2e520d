#!/usr/bin/env bash
# Installs the PyPI tools the tests use (aiosmtpd, a real SMTP server) into a venv under
# ~/.cache/daybook/pyenv, once; prints the venv's python. Run by .ci/run and, lazily, by the
# tests themselves.
set -euo pipefail
VENV=${DAYBOOK_PYENV:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/daybook/pyenv}
if ! "$VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
  mkdir -p "$(dirname "$VENV")"
  # Two tests may install at once: one does, the other waits for it.
  exec 9>"$VENV.lock"
  flock 9
  if ! "$VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q 'aiosmtpd==1.4.6' >&2
  fi
fi
echo "$VENV/bin/python"
