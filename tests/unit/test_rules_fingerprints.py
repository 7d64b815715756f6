"""The rules fingerprints kept in ``tag_rules`` are the same in every process: a
re-tagging run in a new process judges again only what the rules changed."""

from __future__ import annotations

import os
import subprocess
import sys

_PRINT = """
from pathlib import Path
import vipsync.config
from vipsync.eligibility.loader import load_policies
from vipsync.workers.tagging import Rules, rules_fingerprints
policies = load_policies(Path(vipsync.config.__file__).parent / "policies")
rules = Rules(catalog=None, policies=policies, official_stores=frozenset({"shopify-us", "shopify-eu", "amazon-eu"}))
print(sorted(rules_fingerprints(rules).items()))
"""


def _fingerprints(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", _PRINT], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def test_fingerprints_do_not_depend_on_the_process_string_hashing():
    # The policies hold sets (regions, stores, categories): their iteration order follows
    # the process's string hash seed.
    first = _fingerprints("1")
    assert first.startswith("[(")
    assert all(_fingerprints(seed) == first for seed in ("2", "3", "4"))
