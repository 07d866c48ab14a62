"""Cost of classifying a hit from a client the hub has not seen (the verdict cache cold).

The pixel and the redirect remember verdicts per user agent and address, so a classifier call
happens once per new client; a burst of new clients (a send to a big list) pays it per hit. This
times `machine.classify` on unseen browser agents, for an open and for a click, against the
case-insensitive search of the bot pattern that rule 7 used before (its look-behind alternation
under re.IGNORECASE cost more than all the other rules together), measured in the same run:

    .venv/bin/python bench/classifier.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable

from contacthub.email.machine import BOT_USER_AGENT, HitKind, classify

AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.{build}.{patch} Safari/537.36"
)


def per_call_us(function: Callable[[str], object], agents: list[str]) -> float:
    """Microseconds per call, the best of three passes over `agents` (each agent once a pass)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for agent in agents:
            function(agent)
        best = min(best, time.perf_counter() - started)
    return best / len(agents) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="unseen agents per measurement")
    calls = parser.parse_args().calls
    rng = random.Random(1)
    agents = [
        AGENT.format(build=rng.randrange(10**4), patch=rng.randrange(10**3)) for _ in range(calls)
    ]
    case_insensitive = re.compile(BOT_USER_AGENT.pattern, re.IGNORECASE)
    figures = {
        "bot pattern, re.IGNORECASE (before)": per_call_us(case_insensitive.search, agents),
        "bot pattern on the lowered agent (now)": per_call_us(
            lambda agent: BOT_USER_AGENT.search(agent.lower()), agents
        ),
        "classify, open": per_call_us(
            lambda agent: classify(HitKind.OPEN, user_agent=agent, ip="203.0.113.9"), agents
        ),
        "classify, click": per_call_us(
            lambda agent: classify(
                HitKind.CLICK, user_agent=agent, ip="203.0.113.9", seconds_since_delivery=60.0
            ),
            agents,
        ),
    }
    baseline = figures["bot pattern, re.IGNORECASE (before)"]
    print(f"{'measurement':<42} {'µs/call':>8} {'÷ before':>9}")
    for name, value in figures.items():
        print(f"{name:<42} {value:8.1f} {value / baseline:9.2f}")


if __name__ == "__main__":
    main()
