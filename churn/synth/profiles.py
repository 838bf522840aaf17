"""Size profiles of the generator: how many users, how much history, and how the population behaves."""

from __future__ import annotations

from dataclasses import dataclass, field

from churn.errors import ChurnError


@dataclass(frozen=True)
class Behaviour:
    """How a profile's population departs from the calibrated defaults.

    The defaults are the model the tiny, demo and bench profiles were calibrated with (and reproduce their
    files byte for byte). The full profile moves them so that, like the real dump, the member base grows
    towards 2017 (a shorter history per user, so fewer history rows per cohort user), people listen on
    more of their member days, some periods are paid twice in a row, and most member rows belong to people
    without a subscription in the history window.
    """

    established: float = 0.6  # share of subscribers who were members before the history starts
    cancel_shift: float = 0.0  # added to an auto-renewer's cancel logit (newer members cancel more)
    paid_ahead: float = 0.0  # share of paid periods bought as two plans a few days apart
    listening: float = 1.0  # scale of each user's share of member days with listening (capped at 1)
    dormant: float = 0.0  # share of people who only have a member row (no transactions, no logs)


@dataclass(frozen=True)
class Profile:
    """A named size: `users` simulated people over `days` of history ending 2017-03-31."""

    name: str
    users: int
    days: int
    chunk_users: int = 10_000
    behaviour: Behaviour = field(default_factory=Behaviour)


# The full profile's figures were fitted on 40k-person runs to the real dump's row counts per file
# (../shared/kkbox-data.md) and checked on 200k people; tests/unit/test_synth_full.py has the counts.
FULL_BEHAVIOUR = Behaviour(established=0.1, cancel_shift=-0.3, paid_ahead=0.2, listening=1.3, dormant=0.48)

PROFILES: dict[str, Profile] = {
    "tiny": Profile("tiny", users=1_000, days=821),
    "demo": Profile("demo", users=20_000, days=821),
    "bench": Profile("bench", users=1_000_000, days=821),
    "full": Profile("full", users=8_850_000, days=821, behaviour=FULL_BEHAVIOUR),
}


def get_profile(name: str, users: int | None = None, days: int | None = None) -> Profile:
    """The profile by name, with optional overrides of the user count and history length."""
    if name not in PROFILES:
        raise ChurnError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    base = PROFILES[name]
    if users is not None and users < 1:
        raise ChurnError(f"--users must be at least 1 (got {users})")
    if days is not None and not 60 <= days <= 821:
        raise ChurnError(f"--days must be between 60 and 821 (got {days})")
    return Profile(name, users or base.users, days or base.days, base.chunk_users, base.behaviour)
