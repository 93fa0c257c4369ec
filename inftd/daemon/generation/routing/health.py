"""What the router knows of each provider's health, in this process: cooldowns, failures in
a row, the recent error rate, latency, and calls in flight.

How a failure (``ProviderError.kind``) moves a provider:

    rate_limited  cooled down for its Retry-After (at most ``park_seconds``); without one,
                  like unavailable. Out of quota (not transient): parked.
    unavailable,  failures in a row beyond ``allowed_fails`` cool it down for
    timeout,      ``cooldown_base`` doubling with each further failure, up to
    bad_response  ``cooldown_max`` (and at least a Retry-After it sent)
    auth          parked for ``park_seconds``, logged once when parking starts
    refused       no cooldown: a declined prompt says little about the next one. It still
                  counts in the error rate, so a provider that refuses everything (a model
                  that does not exist, say) sinks in the score.

Every outcome enters the error window (the last ``error_window`` calls); a success resets
the failures in a row. A cooled provider comes back by itself when its time is up (and is
cooled longer if it fails again at once). The state is per process: several workers each
learn on their own, which only makes them a little slower to agree.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from inftd.daemon.config import RoutingSettings
from inftd.daemon.providers.base import ProviderError

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds, monotonic
MAX_DOUBLINGS = 30  # of the cooldown; far past any cooldown_max, and no float overflow


@dataclass
class _State:
    until: float = 0.0  # not called before this moment
    fails: int = 0  # failures in a row (refusals aside)
    outcomes: deque[bool] = field(default_factory=deque)  # recent calls, True: failed
    latency: dict[str, float] = field(default_factory=dict)  # capability -> EMA seconds
    in_flight: int = 0


class Health:
    def __init__(self, settings: RoutingSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._states: dict[str, _State] = {}

    def _state(self, provider: str) -> _State:
        state = self._states.get(provider)
        if state is None:
            state = _State(outcomes=deque(maxlen=self._settings.error_window))
            self._states[provider] = state
        return state

    def cooling_for(self, provider: str) -> float:
        """Seconds until ``provider`` may be called again; 0 if it may be now."""
        return max(self._state(provider).until - self._clock(), 0.0)

    def error_rate(self, provider: str) -> float:
        outcomes = self._state(provider).outcomes
        return sum(outcomes) / len(outcomes) if outcomes else 0.0

    def latency(self, provider: str, capability: str) -> float | None:
        return self._state(provider).latency.get(capability)

    def in_flight(self, provider: str) -> int:
        return self._state(provider).in_flight

    def started(self, provider: str) -> None:
        self._state(provider).in_flight += 1

    def ended(self, provider: str) -> None:
        self._state(provider).in_flight -= 1

    def succeeded(self, provider: str, capability: str, seconds: float) -> None:
        state = self._state(provider)
        state.fails = 0
        state.outcomes.append(False)
        alpha = self._settings.latency_alpha
        previous = state.latency.get(capability)
        state.latency[capability] = (
            seconds if previous is None else alpha * seconds + (1 - alpha) * previous
        )

    def failed(self, error: ProviderError) -> None:
        state = self._state(error.provider)
        state.outcomes.append(True)
        if error.kind == "refused":
            return
        wait = self._wait_after(state, error)
        if wait > 0:
            state.until = max(state.until, self._clock() + wait)

    def _wait_after(self, state: _State, error: ProviderError) -> float:
        settings = self._settings
        if error.kind == "auth" or (error.kind == "rate_limited" and not error.transient):
            if self.cooling_for(error.provider) < settings.park_seconds / 2:
                log.warning(
                    "%s is parked for %gs: %s", error.provider, settings.park_seconds, error
                )
            return settings.park_seconds
        if error.kind == "rate_limited" and error.retry_after is not None:
            return min(error.retry_after, settings.park_seconds)
        state.fails += 1
        beyond = state.fails - settings.allowed_fails
        if beyond <= 0:
            return 0.0
        doublings = min(beyond - 1, MAX_DOUBLINGS)
        backoff: float = min(settings.cooldown_base * float(2**doublings), settings.cooldown_max)
        if error.retry_after is not None:
            backoff = max(backoff, min(error.retry_after, settings.park_seconds))
        return backoff

    def status(self, provider: str, now: datetime) -> dict[str, Any]:
        """One provider as ``/v1/status`` shows it: healthy (callable now) or cooling down
        until a moment, the error rate of its last calls, the moving average of its latency
        per capability (milliseconds), failures in a row and calls in flight."""
        state = self._state(provider)
        cooling = self.cooling_for(provider)
        return {
            "healthy": cooling == 0,
            "coolingUntil": (now + timedelta(seconds=cooling)).isoformat() if cooling else None,
            "errorRate": round(self.error_rate(provider), 3),
            "recentCalls": len(state.outcomes),
            "latencyMs": {k: round(v * 1000, 1) for k, v in sorted(state.latency.items())},
            "failsInARow": state.fails,
            "inFlight": state.in_flight,
        }

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Each provider's state, for status pages and logs."""
        return {
            name: {
                "coolingFor": round(self.cooling_for(name), 3),
                "failsInARow": state.fails,
                "errorRate": round(self.error_rate(name), 3),
                "latency": {k: round(v, 4) for k, v in state.latency.items()},
                "inFlight": state.in_flight,
            }
            for name, state in sorted(self._states.items())
        }
