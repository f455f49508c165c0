"""Import pybullet without its build-time banner on stderr (errors must stay one line).

Imported first by ``robocell/__init__.py``; later ``import pybullet`` statements find the module
already loaded.
"""

import os
import sys

if "pybullet" not in sys.modules:
    sys.stderr.flush()
    _saved = os.dup(2)
    _devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(_devnull, 2)
        import pybullet  # noqa: F401
    finally:
        os.dup2(_saved, 2)
        os.close(_saved)
        os.close(_devnull)
