#!/usr/bin/env bash
# Set the environment up if needed, then run the test suite (slow end-to-end runs excluded;
# pass `-m slow` or `-m ''` to include them). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/run_scripts/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
