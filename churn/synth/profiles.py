"""Size profiles of the generator: how many users and how much history."""

from __future__ import annotations

from dataclasses import dataclass

from churn.errors import ChurnError


@dataclass(frozen=True)
class Profile:
    """A named size: `users` simulated subscribers over `days` of history ending 2017-03-31."""

    name: str
    users: int
    days: int
    chunk_users: int = 10_000


PROFILES: dict[str, Profile] = {
    "tiny": Profile("tiny", users=1_000, days=821),
    "demo": Profile("demo", users=20_000, days=821),
    "bench": Profile("bench", users=1_000_000, days=821),
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
    return Profile(name, users or base.users, days or base.days, base.chunk_users)
