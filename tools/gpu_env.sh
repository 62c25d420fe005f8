# Source on the lent GPU machine: installs the carried wheels (.whl/) into /tmp/site and sets
# the environment the project's commands need there (see benchmarks/NOTES.md).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .whl/diffusers*.whl .whl/importlib_metadata*.whl .whl/zipp*.whl .whl/lazy_importer*.whl \
  .whl/pypng*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export CODEDAP_OPENCV_DATA=$PWD/.evaldata
