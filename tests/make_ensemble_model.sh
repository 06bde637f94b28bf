#!/bin/sh
# make_ensemble_model.sh PYTHON SPEC_A SPEC_B OUT: an ensemble folder
# (models/FORMAT.md "Ensembles") of two random-weight models made by
# train/make_random_model.py from different specs and seeds, weights 1 and 3,
# 3 TTA transforms. A failure fails the build of the test that needs it.
python=$1 spec_a=$2 spec_b=$3 out=$4
root=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out"
if ! PYTHONPATH="$root/train" "$python" "$root/train/make_random_model.py" "$spec_a" "$out/a" --seed 5 ||
  ! PYTHONPATH="$root/train" "$python" "$root/train/make_random_model.py" "$spec_b" "$out/b" --seed 9; then
  rm -rf "$out"
  echo "make_ensemble_model.sh: train/make_random_model.py failed (is PyTorch installed? scripts/setup installs python3-torch)" >&2
  exit 1
fi
cat > "$out/model.yaml" <<YAML
format: 1
name: daemon-ensemble
version: "1"
ensemble:
  members: [a, b]
  weights: [1, 3]
tta: {count: 3}
YAML
exit 0
