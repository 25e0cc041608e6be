# Sourced by the scripts: a project virtualenv with opendps installed (extras in $1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OPENDPS_VENV:-$root/.venv}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || { echo "opendps needs Python 3.11 or newer" >&2; exit 1; }
stamp="$venv/.opendps-installed${1:+-$1}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  log="$venv/pip-install.log"
  echo "installing opendps${1:+[$1]} into $venv (log: $log)" >&2
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$venv/bin/python" -m pip install --disable-pip-version-check -e "$root${1:+[$1]}"; } \
       >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "installing opendps failed; the whole log is in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
