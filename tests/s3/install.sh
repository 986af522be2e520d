#!/usr/bin/env bash
# Installs moto's S3-compatible server (PyPI `moto[server]`, the version below) into a venv
# under ~/.cache/daybook/moto, once, and prints the path of its `moto_server`.
set -euo pipefail
version=5.2.5
dir=${DAYBOOK_MOTO_DIR:-$HOME/.cache/daybook/moto}
if [[ ! -x $dir/bin/moto_server || $(cat "$dir/.installed" 2>/dev/null) != "$version" ]]; then
  rm -rf "$dir"
  python3 -m venv "$dir" >&2
  "$dir/bin/pip" install -q --disable-pip-version-check "moto[server]==$version" >&2
  echo "$version" >"$dir/.installed"
fi
echo "$dir/bin/moto_server"
