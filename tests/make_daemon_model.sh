#!/bin/sh
# make_daemon_model.sh PYTHON SPEC OUT: the daemon tests' random-weight model
# (train/make_random_model.py). A failure (no PyTorch, a bad spec) fails the
# build of the tests that need it, with the script's message: it never turns
# into skipped tests.
python=$1 spec=$2 out=$3
root=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
if ! PYTHONPATH="$root/train" "$python" "$root/train/make_random_model.py" "$spec" "$out" --seed 3; then
  rm -rf "$out"
  echo "make_daemon_model.sh: train/make_random_model.py $spec failed (is PyTorch installed? scripts/setup installs python3-torch)" >&2
  exit 1
fi
