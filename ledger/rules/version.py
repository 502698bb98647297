"""The rules' version: a digest of their source code, so any change to the rules makes what
was computed under them and kept (replay checkpoints, committed MRR's saved folds) stale, with
no version number to remember to bump."""

from __future__ import annotations

import functools
from hashlib import sha256
from importlib import resources

__all__ = ["rules_version"]


@functools.cache
def rules_version() -> str:
    digest = sha256()
    package = resources.files("ledger.rules")
    for name in sorted(p.name for p in package.iterdir() if p.name.endswith(".py")):
        digest.update(name.encode() + b"\0" + package.joinpath(name).read_bytes() + b"\0")
    return digest.hexdigest()[:32]
