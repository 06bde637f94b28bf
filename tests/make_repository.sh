#!/bin/sh
# make_repository.sh PYTHON TINY_MODEL SPEC_B ENSEMBLE OUT: a model repository
# (model.repository) for the daemon's repository tests, from the daemon
# tests' tiny model folder and train/make_random_model.py:
#   tiny/1/  the tiny model as it is      tiny/2/  the same spec, other weights (seed 11)
#   other/   SPEC_B, unversioned (its model.yaml names it "ensemble-b": a warning)
#   broken/  the tiny model with its weights cut short (fails to load)
#   ens/     the daemon tests' ensemble folder (members inside it)
# A failure fails the build of the test that needs it.
python=$1 tiny=$2 spec_b=$3 ensemble=$4 out=$5
root=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out/tiny" || exit 1
cp -r "$tiny" "$out/tiny/1" && cp -r "$ensemble" "$out/ens" && cp -r "$tiny" "$out/broken" &&
  head -c 200 "$tiny/weights.safetensors" > "$out/broken/weights.safetensors" || exit 1
if ! PYTHONPATH="$root/train" "$python" "$root/train/make_random_model.py" \
    "$root/tests/models/daemon_tiny.yaml" "$out/tiny/2" --seed 11 ||
  ! PYTHONPATH="$root/train" "$python" "$root/train/make_random_model.py" "$spec_b" "$out/other" --seed 9; then
  rm -rf "$out"
  echo "make_repository.sh: train/make_random_model.py failed (is PyTorch installed? scripts/setup installs python3-torch)" >&2
  exit 1
fi
exit 0
