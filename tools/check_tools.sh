#!/usr/bin/env bash
# Stops `make setup` early, with the fix, when a tool it needs is missing.
set -u
missing=0
need() {  # need COMMAND "how to get it"
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "make setup: '$1' is missing. $2" >&2
    missing=1
  fi
}
need "${PYTHON:-python3.11}" "The ROS 2 wheels are built for CPython 3.11: install it (Debian: apt-get install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11."
need cmake "It builds prgcn_msgs: apt-get install cmake (3.8 or newer)."
need make "apt-get install make."
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  echo "make setup: no C++ compiler (c++ or g++). It builds prgcn_msgs: apt-get install g++." >&2
  missing=1
fi
if [ "$missing" = 0 ]; then
  "${PYTHON:-python3.11}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || {
    echo "make setup: ${PYTHON:-python3.11} is not a CPython 3.11; the ROS 2 wheels need exactly 3.11." >&2
    missing=1
  }
fi
if [ "$missing" = 0 ]; then
  # Debian's python3.11 imports venv without python3.11-venv, then cannot put pip in one.
  "${PYTHON:-python3.11}" -c 'import venv, ensurepip' 2>/dev/null || {
    echo "make setup: ${PYTHON:-python3.11} cannot make a virtual environment with pip (Debian: apt-get install python3.11-venv)." >&2
    missing=1
  }
fi
exit $missing
