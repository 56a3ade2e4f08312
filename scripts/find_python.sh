#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter (the version in .python-version), or exits 1
# with a hint. Tries pyenv's exact version first, then python3.10 on PATH.
set -u
want=$(cat "$(dirname "$0")/../.python-version" 2>/dev/null || echo 3.10.13)
candidates=()
if command -v pyenv >/dev/null 2>&1; then
  candidates+=("$(pyenv root)/versions/${want}/bin/python")
fi
candidates+=("$(command -v python3.10 2>/dev/null)" "$(command -v python3 2>/dev/null)")
for py in "${candidates[@]}"; do
  [ -n "$py" ] && [ -x "$py" ] || continue
  if "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
    echo "$py"; exit 0
  fi
done
echo "No Python 3.10 found (wanted ${want}). Install it, e.g. 'pyenv install ${want}', or run make PYTHON=/path/to/python3.10" >&2
exit 1
