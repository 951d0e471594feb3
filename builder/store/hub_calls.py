"""Every call to the Hub bounded in time, retried a few times, and reported in one line.

huggingface_hub sends most API requests with no timeout at all, so a Hub that accepts a request
and never answers would keep a run waiting forever. `install_timeouts` bounds every request of
the process's shared HTTP client (`BUILDER_HUB_TIMEOUT` seconds without a byte, default 60;
connecting: 10; a smaller timeout the client sets itself is kept, e.g. 10 s for a download's
metadata). `Limits.retry` runs one call up to
`BUILDER_HUB_ATTEMPTS` times (default 3), waiting `BUILDER_HUB_RETRY_WAIT` seconds (default 2,
doubling) between tries, when the failure is one that can pass: a timeout, a lost connection,
HTTP 408/429/5xx. A rate limit that says how long to wait (HTTP 429 or 503 with `Retry-After`;
the Hub limits commits per repository, 128 an hour is its documented figure) is waited out as
asked and not counted as a try, up to `BUILDER_HUB_MAX_WAIT` seconds in all (default 3600).
Then it raises StoreError, one line. huggingface_hub retries some requests
itself (uploads, downloads, listings: 5 times, waiting 1 to 8 s) on server errors and lost
connections, but a timeout is raised past it (HubStalled), so that a stalled Hub costs at most
ATTEMPTS x TIMEOUT per call; an upload that failed after huggingface_hub's retries is not
retried again here.

Whether a commit that timed out reached the Hub anyway is the caller's question (hub.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from builder.errors import CommitConflict, RepoNotFound, RevisionNotFound, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRIED_STATUSES = (408, 429, 500, 502, 503, 504)
_CONNECT_TIMEOUT = 10.0
_installed: list[float] = []  # the timeout the shared client has now


class HubUnavailable(StoreError):
    """A failure that may pass (timeout, lost connection, 5xx); `final` if retried already;
    `retry_after`: the seconds the Hub asked to wait (a rate limit's `Retry-After`)."""

    def __init__(self, message: str, final: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.final = final
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    timeout: float = 60.0
    attempts: int = 3
    wait: float = 2.0
    max_wait: float = 3600.0  # the longest rate limits are waited out, in all, per call

    @classmethod
    def from_env(cls) -> Limits:
        def number(name: str, default: float) -> float:
            text = os.environ.get(name, "")
            try:
                value = float(text) if text else default
            except ValueError:
                raise StoreError(f"{name}={text!r} is not a number of seconds") from None
            if value < 0:
                raise StoreError(f"{name}={text!r} must not be negative")
            return value

        return cls(
            timeout=number("BUILDER_HUB_TIMEOUT", cls.timeout) or cls.timeout,
            attempts=max(1, int(number("BUILDER_HUB_ATTEMPTS", cls.attempts))),
            wait=number("BUILDER_HUB_RETRY_WAIT", cls.wait),
            max_wait=number("BUILDER_HUB_MAX_WAIT", cls.max_wait),
        )

    def retry(self, call: Callable[[], T], repo: str, revision: str | None = None) -> T:
        """`call()`, retried on failures that may pass; its errors as one line."""
        attempt, waited = 1, 0.0
        while True:
            try:
                with hub_errors(repo, revision, timeout=self.timeout):
                    return call()
            except HubUnavailable as err:
                if (more := self.wait_out(err, waited)) is not None:
                    waited += more
                    continue
                if err.final or attempt == self.attempts:
                    raise StoreError(f"{err}{tried(attempt)}") from None
                self.pause(err, attempt)
                attempt += 1

    def wait_out(self, err: HubUnavailable, waited: float) -> float | None:
        """A rate limit that names its wait, within `max_wait` in all: slept, and the seconds
        returned (the call is made again, not counted as a try); else None."""
        if err.retry_after is None or waited + err.retry_after > self.max_wait:
            return None
        log.warning(
            "%s; the Hub asks to wait %g s: waiting (%g s waited so far, at most %g)",
            err, err.retry_after, waited, self.max_wait,
        )  # fmt: skip
        time.sleep(err.retry_after)
        return err.retry_after

    def pause(self, err: Exception, attempt: int) -> None:
        wait = self.wait * 2 ** (attempt - 1)
        log.warning("%s; trying again in %g s (%d/%d)", err, wait, attempt + 1, self.attempts)
        time.sleep(wait)


def tried(attempts: int) -> str:
    return f" (tried {attempts} times)" if attempts > 1 else ""


class HubStalled(Exception):
    """No answer within the timeout. Not an httpx timeout, so that huggingface_hub does not
    retry it 5 times itself (with waits) on top of the retries here."""


def install_timeouts(timeout: float) -> None:
    """Bound every request of huggingface_hub's shared client by `timeout`, and make a request
    that times out raise HubStalled (retried here, not inside huggingface_hub)."""
    if _installed == [timeout]:
        return
    import httpx2
    from huggingface_hub.utils import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    def bound(request) -> None:
        limits = dict(request.extensions.get("timeout") or {})
        for phase in ("connect", "read", "write", "pool"):
            bound = min(timeout, _CONNECT_TIMEOUT) if phase == "connect" else timeout
            limits[phase] = bound if limits.get(phase) is None else min(limits[phase], bound)
        request.extensions = {**request.extensions, "timeout": limits}

    class StallGuard(httpx2.BaseTransport):
        def __init__(self, inner):
            self.inner = inner

        def handle_request(self, request):
            try:
                return self.inner.handle_request(request)
            except httpx2.TimeoutException as err:
                raise HubStalled(f"no answer within {timeout:g} s ({err})") from err

        def close(self) -> None:
            self.inner.close()

    def factory():
        client = default_client_factory()
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks["request"], bound]}
        # The client's own connection pool, and those of proxies from the environment.
        client._transport = StallGuard(client._transport)
        client._mounts = {k: v and StallGuard(v) for k, v in client._mounts.items()}
        return client

    set_client_factory(factory)
    _installed[:] = [timeout]


@contextmanager
def hub_errors(
    repo: str,
    revision: str | None = None,
    conflict_from: str | None = None,
    timeout: float | None = None,
):
    """Turn the client's exceptions into one-line store errors that name what was asked;
    failures that may pass are HubUnavailable."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except RevisionNotFoundError:
        raise RevisionNotFound(f"revision '{revision}' not found in {repo} (hf)") from None
    except RepositoryNotFoundError:
        raise RepoNotFound(f"repository '{repo}' not found on the Hub, or not visible") from None
    except LocalTokenNotFoundError:
        raise StoreError("no Hugging Face token: set HF_TOKEN or run `hf auth login`") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 412 and conflict_from:
            raise CommitConflict(
                f"{repo}@{revision} moved since {conflict_from}: someone else published; rerun"
            ) from None
        if status == 401:
            raise StoreError(f"the Hub refused the token for {repo} (HTTP 401)") from None
        message = f"{repo}: Hub error: {_first_line(err)}"
        if status in _RETRIED_STATUSES:
            raise HubUnavailable(message, retry_after=retry_after(err.response)) from None
        raise StoreError(message) from None
    except LocalEntryNotFoundError as err:  # a download that could not reach the Hub
        raise HubUnavailable(f"{repo}: cannot download: {_first_line(err)}") from None
    except Exception as err:
        cause = _network_cause(err)
        if cause is None:
            raise
        # An upload that failed after huggingface_hub's own retries comes wrapped: final.
        wrapped = cause is not err
        if _is_timeout(cause):
            problem = "the Hub did not answer" + (f" within {timeout:g} s" if timeout else "")
        elif isinstance(cause, HfHubHTTPError):
            problem = _first_line(cause)
        else:
            problem = f"cannot reach the Hub: {_first_line(cause)}"
        if wrapped:  # e.g. "Error while uploading 'x' to the Hub."
            problem = f"{_first_line(err).rstrip('.')}: {problem}"
        raise HubUnavailable(f"{repo}: {problem}", final=wrapped) from None


def retry_after(response) -> float | None:
    """The seconds a 429 or 503 answer's `Retry-After` asks to wait (a number, or an HTTP
    date), else None."""
    if response is None or response.status_code not in (429, 503):
        return None
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _network_cause(err: BaseException) -> BaseException | None:
    """`err` or the exception it was raised from, if that is a network or HTTP failure."""
    from huggingface_hub.errors import HfHubHTTPError

    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, (HfHubHTTPError, HubStalled)) or _is_network_error(err):
            return err
        err, seen = err.__cause__, seen + 1
    return None


def _is_network_error(err: BaseException) -> bool:
    """Connection refused, DNS, timeouts: raised by the HTTP library huggingface_hub uses."""
    library = type(err).__module__.split(".")[0]
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    return library in ("httpx", "httpx2", "httpcore", "requests", "urllib3") and not isinstance(
        err, OSError
    )


def _is_timeout(err: BaseException) -> bool:
    return isinstance(err, (HubStalled, TimeoutError)) or "Timeout" in type(err).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
