"""Cost of the keyed e-mail digest, and why a leaked store no longer gives addresses away.

Prints: candidate addresses digested per second with the plain SHA-256 the store used
before keyed digests and with the keyed digest (HMAC-SHA-256, one step per key of the
chain); then a dictionary attack on a member's stored digest: with a plain digest a list of
candidate addresses finds the member, with a keyed digest the same list finds nothing unless
the attacker also holds the secret key; and the allowlist's cost per Shopify order.

    .venv/bin/python bench/privacy_bench.py            # 200,000 candidates
    .venv/bin/python bench/privacy_bench.py --n 2000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from vipsync.connectors.minimize import minimize
from vipsync.privacy import Digester, PiiKey

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "shopify" / "order.json"


def _rate(n: int, fn) -> tuple[float, float]:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return n / elapsed, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="candidate addresses (default 200,000)")
    args = parser.parse_args()
    n = args.n
    candidates = [f"buyer{i}@example.com" for i in range(n)]
    member = candidates[n // 2]
    key = PiiKey(key_id="bench", secret=b"k" * 48)
    digester = Digester(key)
    rotated = Digester(PiiKey(key_id="bench2", secret=b"j" * 48), (key,))

    plain_store = hashlib.sha256(member.encode()).hexdigest()
    keyed_store = digester.email(member)

    found_plain: list[str] = []
    rate_plain, t_plain = _rate(
        n,
        lambda: found_plain.extend(
            c for c in candidates if hashlib.sha256(c.encode()).hexdigest() == plain_store
        ),
    )
    found_guess: list[str] = []
    guess = Digester(PiiKey(key_id="guess", secret=b"g" * 48))  # an attacker without the key
    rate_keyed, t_keyed = _rate(
        n, lambda: found_guess.extend(c for c in candidates if guess.email(c) == keyed_store)
    )
    rate_chain, t_chain = _rate(n, lambda: [rotated.email(c) for c in candidates])

    print(f"candidates: {n:,}")
    print(
        f"plain SHA-256:        {rate_plain:12,.0f} addresses/s ({t_plain:.2f} s); member found: {bool(found_plain)}"
    )
    print(
        f"keyed HMAC-SHA-256:   {rate_keyed:12,.0f} addresses/s ({t_keyed:.2f} s); member found without the key: "
        f"{bool(found_guess)}"
    )
    print(f"keyed, 2-key chain:   {rate_chain:12,.0f} addresses/s ({t_chain:.2f} s)")

    order = json.loads(FIXTURE.read_text())["order"]
    m = 20_000
    rate_min, t_min = _rate(
        m, lambda: [minimize(order, digester=digester, source="shopify") for _ in range(m)]
    )
    print(f"allowlist (official Shopify order): {rate_min:,.0f} orders/s ({t_min:.2f} s for {m:,})")


if __name__ == "__main__":
    main()
