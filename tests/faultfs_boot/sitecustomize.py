"""Loaded by a node process whose PYTHONPATH starts with this directory (``tests/faultfs.py``
``node_env``): installs the fault-injecting file layer when ``PYKRAFT_FAULTFS`` is set."""

import os

if os.environ.get("PYKRAFT_FAULTFS"):
    from tests.faultfs import install

    install(os.environ["PYKRAFT_FAULTFS"])
