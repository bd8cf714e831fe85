#!/usr/bin/env bash
# Make the virtual environment that benchmark/vs_cleanrl.py runs CleanRL in (default: .venv-cleanrl in the checkout;
# another path as the first argument), with the pins of benchmark/cleanrl-requirements.txt. Separate from the
# project's environment because CleanRL 0.4.8 needs gym and numpy 1.x, which this project's gymnasium stack does not.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/../.venv-cleanrl}"
python="${PYTHON:-python3}"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q -r "$here/cleanrl-requirements.txt"
# Without their dependencies: cleanrl 0.4.8 would pull an unpinned gym (0.26, whose API its scripts predate) and
# wandb; stable-baselines3 1.6.2 pins gym==0.21. Both work on the pins above.
"$venv/bin/pip" install -q --no-deps cleanrl==0.4.8 stable-baselines3==1.6.2
"$venv/bin/python" -c "import cleanrl, gym, mujoco, torch; print('cleanrl venv ready:', gym.__version__, mujoco.__version__, torch.__version__)"
echo "$venv/bin/python"
