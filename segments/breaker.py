"""A circuit breaker for the request path's calls to the fast store (pure: no Django).

Closed, calls go through. A failed call, or ``slow_calls`` slow ones in a row, opens it: for
``open_seconds`` no call is made (pages render default content at once). Then it is half-open:
the next call is let through as a probe, one at a time, while every other caller is still
refused; a fast success closes it, a failure or a slow success opens it again.

One breaker per process, shared by its threads; the lock is only taken on transitions, so the
hot path (closed, fast) reads a float and compares it.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    open_seconds: float  # how long the store is left alone once the breaker opens
    slow_call_seconds: float  # a call slower than this counts as slow
    slow_calls: int  # this many slow calls in a row open the breaker


class CircuitBreaker:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        # While the clock is before it, no call is made: the breaker is open, or a half-open
        # probe is in flight (a probe that never reports back frees the way for another one
        # after ``open_seconds``: nothing stays stuck).
        self._open_until = 0.0
        self._probing = False
        self._slow = 0  # slow calls in a row
        self.opened = 0  # how many times it opened (tests and metrics read it)

    @property
    def state(self) -> str:
        if self._open_until == 0.0:
            return CLOSED
        if self._probing:
            return HALF_OPEN
        return OPEN if self._clock() < self._open_until else HALF_OPEN

    def retry_after(self) -> float:
        """Seconds until a call may be tried again (0 when one may be tried now)."""
        return max(self._open_until - self._clock(), 0.0) if self._open_until else 0.0

    def allow(self, policy: BreakerPolicy) -> bool:
        """Whether a call may be made now. When half-open, True for one caller (the probe),
        who then reports :meth:`success` or :meth:`failure`."""
        until = self._open_until
        if until == 0.0:
            return True
        if self._clock() < until:
            return False
        with self._lock:
            if self._open_until == 0.0:
                return True
            now = self._clock()
            if now < self._open_until:
                return False
            self._open_until = now + policy.open_seconds
            self._probing = True
            return True

    def success(self, seconds: float, policy: BreakerPolicy) -> bool:
        """Report a call that succeeded in ``seconds``. Returns True when this closed the
        breaker (the store is back: the caller may catch up on what it postponed)."""
        if seconds > policy.slow_call_seconds:
            with self._lock:
                self._slow += 1
                if self._probing or self._slow >= policy.slow_calls:
                    self._open(policy)
            return False
        if self._open_until == 0.0 and not self._slow:
            return False  # the usual case: closed, and stays so
        with self._lock:
            recovered = self._open_until != 0.0
            self._open_until = 0.0
            self._probing = False
            self._slow = 0
            return recovered

    def failure(self, policy: BreakerPolicy) -> None:
        """Report a call that failed (an error or a timeout): open at once."""
        with self._lock:
            self._open(policy)

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0
            self._probing = False
            self._slow = 0

    def _open(self, policy: BreakerPolicy) -> None:
        self._open_until = self._clock() + policy.open_seconds
        self._probing = False
        self._slow = 0
        self.opened += 1
