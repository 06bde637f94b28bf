#!/bin/sh
# make_daemon_model.sh PYTHON SPEC OUT: the daemon tests' random-weight model
# (train/make_random_model.py). Without PyTorch the build still succeeds:
# OUT then holds only a SKIP note and the daemon tests skip (exit 77).
python=$1 spec=$2 out=$3
root=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
if ! PYTHONPATH="$root/train" "$python" "$root/train/make_random_model.py" "$spec" "$out" --seed 3; then
  mkdir -p "$out"
  echo "train/make_random_model.py failed (is PyTorch installed?)" > "$out/SKIP"
fi
exit 0
