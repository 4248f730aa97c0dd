"""The bulk URL probe: libcurl's multi interface (pycurl) driven from one thread.

Chosen by measurement (benchmarks/bench_url_engines.py): the same ranged GETs cost ~0.04 ms of
CPU per URL here against ~0.45 ms in urllib3 pools from threads, and one thread keeps thousands in
flight. libcurl only moves bytes; everything the probe guarantees is decided here:

- **SSRF guard on every connection and hop.** Each hop's host is resolved and judged by
  :class:`audit.probes.urlguard.AddressPolicy`; libcurl is told to connect to exactly that address
  (``CURLOPT_CONNECT_TO``: no lookup of its own a rebinding DNS could answer differently) and its
  socket factory (``CURLOPT_OPENSOCKETFUNCTION``) refuses any other address. TLS still checks the
  URL's host name (SNI, certificate). libcurl never follows a redirect: each hop is resolved and
  checked again here, against the placeholder list, the hop cap and loops. Proxies are off
  (environment variables included): through one the guard would only see the proxy.
- **Politeness per server address** (:class:`audit.probes.hostsched.HostScheduler`): at most
  ``per_host`` requests in flight per address, every hop counted against the server it goes to,
  ``delay_seconds`` between a server's jobs, a Retry-After (up to its cap) or a backoff pausing
  the whole server; a host failing ``host_failure_limit`` times in a row is given up on.
- **Caps**: a ranged GET, the transfer stopped past ``max_bytes``; ``timeout_seconds`` to connect
  and between bytes; ``max_seconds_per_url`` for an attempt's hops together (a tarpit trickling
  bytes cannot hold a slot). Waiting for our own slots does not count against it.
"""

from __future__ import annotations

import heapq
import selectors
import time
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urljoin

import pycurl

from audit.config import UrlConfig
from audit.probes.curltask import Task, check_hop, new_curl
from audit.probes.hostfiles import FileJob, host_file
from audit.probes.hostsched import HostHealth, HostScheduler, servers
from audit.probes.http import REDIRECTS, Answer, Classifier, Outcome, status_outcome
from audit.probes.urlfailures import broke_off, failure
from audit.probes.urlguard import AddressPolicy
from audit.store.urls import HostFile, UrlProbe

_EVENTS = {
    pycurl.POLL_IN: selectors.EVENT_READ,
    pycurl.POLL_OUT: selectors.EVENT_WRITE,
    pycurl.POLL_INOUT: selectors.EVENT_READ | selectors.EVENT_WRITE,
}
_ALIVE_EVERY = 0.5  # seconds between checks that the run is still wanted


def probe_curl(
    urls: Sequence[str],
    settings: UrlConfig,
    *,
    files: Sequence[FileJob] = (),
    alive: Callable[[], bool] | None = None,
    policy: AddressPolicy | None = None,
) -> Iterator[UrlProbe | HostFile]:
    """Probe ``urls`` (and fetch the host files ``files``, each ahead of its server's URLs) with
    up to ``settings.workers`` jobs in flight, yielding each result as it is decided."""
    policy = policy or AddressPolicy(settings.allow_private, settings.allow_networks)
    jobs: list[FileJob | str] = [*files, *urls]
    if not jobs:
        return iter(())
    key = servers([_url(job) for job in jobs], policy, settings.workers)
    scheduler = HostScheduler(
        jobs, settings.per_host, settings.delay_seconds, lambda j: key(_url(j))
    )
    return _Engine(settings, policy, scheduler, key, alive).run()


def _url(job: FileJob | str) -> str:
    return job.url if isinstance(job, FileJob) else job


class _Engine:
    def __init__(
        self,
        settings: UrlConfig,
        policy: AddressPolicy,
        scheduler: HostScheduler[FileJob | str],
        key: Callable[[str], str],
        alive: Callable[[], bool] | None,
    ) -> None:
        self.s, self.policy, self.sched, self.key, self.alive = (
            settings,
            policy,
            scheduler,
            key,
            alive,
        )
        self.classifier = Classifier(settings)
        self.health = HostHealth(settings.host_failure_limit)
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.multi.setopt(pycurl.M_MAXCONNECTS, max(64, 2 * settings.workers))
        self.selector = selectors.DefaultSelector()
        self.watched: dict[int, int] = {}  # fd -> the events libcurl waits for on it
        self.curl_due: float | None = None
        self.running: dict[pycurl.Curl, Task] = {}
        self.free: list[pycurl.Curl] = []
        self.waiting: dict[str, list[tuple[Task, str, int]]] = {}  # hops waiting for a slot
        self.retries: list[tuple[float, int, Task]] = []
        self.out: list[UrlProbe | HostFile] = []
        self.active = 0  # jobs started and not yet decided
        self.tick = min(0.1, settings.timeout_seconds / 4)
        image = [f"User-Agent: {settings.user_agent}", "Accept-Encoding: identity"]
        self.headers = {
            False: [*image, "Accept: image/*,*/*;q=0.5"],
            True: [*image, "Accept: */*"],
        }

    def run(self) -> Iterator[UrlProbe | HostFile]:
        next_sweep = next_alive = time.monotonic()
        try:
            while self.sched.remaining or self.active:
                now = time.monotonic()
                if self.alive is not None and now >= next_alive:
                    if not self.alive():
                        return
                    next_alive = now + _ALIVE_EVERY
                self._start_jobs(now)
                due = [next_sweep, *(t for t in (self.curl_due, self.sched.wake_at()) if t)]
                if self.retries:
                    due.append(self.retries[0][0])
                events = self.selector.select(max(0.0, min(due) - time.monotonic()))
                for sel, mask in events:
                    flags = (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | (
                        pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0
                    )
                    self.multi.socket_action(sel.fd, flags)
                now = time.monotonic()
                if self.curl_due is not None and now >= self.curl_due:
                    self.curl_due = None
                    self.multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
                self._collect()
                while self.retries and self.retries[0][0] <= now:
                    self._attempt(heapq.heappop(self.retries)[2])
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + self.tick
                if self.out:
                    yield from self.out
                    self.out.clear()
        finally:
            for curl in list(self.running):
                self.multi.remove_handle(curl)
                curl.close()
            for curl in self.free:
                curl.close()
            self.multi.close()
            self.selector.close()

    def _on_socket(self, what: int, fd: int, _multi: object, _data: object) -> None:
        events = _EVENTS.get(what)
        registered = self.watched.get(fd)
        if events is None:
            if registered is not None:
                del self.watched[fd]
                self.selector.unregister(fd)
        elif registered is None:
            self.watched[fd] = events
            self.selector.register(fd, events)
        elif registered != events:
            self.watched[fd] = events
            try:
                self.selector.modify(fd, events)
            except OSError:  # closed and reused before libcurl said so: watch the new socket
                self.selector.unregister(fd)
                self.selector.register(fd, events)

    def _on_timer(self, ms: int) -> None:
        self.curl_due = None if ms < 0 else time.monotonic() + ms / 1000

    def _start_jobs(self, now: float) -> None:
        while self.active < self.s.workers and (taken := self.sched.take(now)) is not None:
            server, job = taken
            self.active += 1
            file = isinstance(job, FileJob)
            task = Task(
                job, server, job.max_bytes if isinstance(job, FileJob) else self.s.max_bytes
            )
            if not file:
                down = self.health.down(task.host, task.url)
                if down is not None:
                    self._release(server)
                    self._decided(task, down)
                    continue
                if self.classifier.placeholder(task.url):
                    self._release(server)
                    self._final(task, Outcome("placeholder", None, _PLACEHOLDER, task.url))
                    continue
            self._hop(task, held=server)

    def _attempt(self, task: Task) -> None:
        task.new_attempt()
        self._hop(task, held=None)

    def _hop(self, task: Task, held: str | None) -> None:
        """Check the task's current URL and send it, holding a slot of the server it goes to."""
        out, url, address, port = check_hop(self.policy, task.current)
        server = address or held
        if out is not None or server is None:
            if held is not None:
                self._release(held)
            self._end_attempt(task, out or Outcome("invalid", detail="no server"))
            return
        if held is not None and held != server:
            self._release(held)
            held = None
        if held is None and not self.sched.enter(server):
            self.waiting.setdefault(server, []).append((task, url, port))
            return
        self._send(task, server, url, port)

    def _send(self, task: Task, server: str, url: str, port: int) -> None:
        curl = self.free.pop() if self.free else new_curl(self.s)
        now = time.monotonic()
        task.new_hop(server, server, now)
        address = f"[{server}]" if ":" in server else server
        file = isinstance(task.job, FileJob)
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.CONNECT_TO, [f"::{address}:{port}"])
        curl.setopt(pycurl.RANGE, f"0-{task.cap - 1}")
        curl.setopt(pycurl.HTTPHEADER, self.headers[file])
        curl.setopt(pycurl.HEADERFUNCTION, task.head.append)
        curl.setopt(pycurl.WRITEFUNCTION, task.write)
        curl.setopt(pycurl.OPENSOCKETFUNCTION, task.open_socket)
        left = self.s.max_seconds_per_url - task.spent
        curl.setopt(pycurl.TIMEOUT_MS, max(1, int(left * 1000)))
        self.running[curl] = task
        self.multi.add_handle(curl)

    def _collect(self) -> None:
        while True:
            queued, done, failed = self.multi.info_read()
            for curl in done:
                self._finished(curl, 0)
            for curl, code, _message in failed:
                self._finished(curl, code)
            if not queued:
                return

    def _sweep(self, now: float) -> None:
        """Stop transfers that went ``timeout_seconds`` without a byte once their request was
        sent (connecting has libcurl's own timeout)."""
        quiet = self.s.timeout_seconds
        for curl, task in list(self.running.items()):
            mark = len(task.head) + task.size
            if mark != task.mark:
                task.mark, task.quiet_since = mark, now
            elif now - task.quiet_since >= quiet and curl.getinfo(pycurl.PRETRANSFER_TIME) > 0:
                self.multi.remove_handle(curl)
                self._finished(curl, pycurl.E_OPERATION_TIMEDOUT, idle=True)

    def _finished(self, curl: pycurl.Curl, error: int, idle: bool = False) -> None:
        task = self.running.pop(curl)
        if not idle:
            self.multi.remove_handle(curl)
        code = int(curl.getinfo(pycurl.RESPONSE_CODE)) if task.head_done() else 0
        os_errno = int(curl.getinfo(pycurl.OS_ERRNO)) if error else 0
        self.free.append(curl)
        now = time.monotonic()
        task.spent += now - task.started
        self._release(task.server)
        if error == pycurl.E_WRITE_ERROR and task.capped:
            error = 0
        # libcurl's own timeouts: the attempt's total bound when it is used up, else connecting
        # (a reused connection found dead is connected afresh: the request may have gone out)
        expired = error == pycurl.E_OPERATION_TIMEDOUT and not idle
        expired = expired and task.spent >= self.s.max_seconds_per_url - 0.005
        if task.refused:
            out = Outcome("refused", detail=f"non-public address {task.address}")
        elif expired:
            limit = self.s.max_seconds_per_url
            text = "no answer in time" if isinstance(task.job, FileJob) else None
            out = Outcome("timeout", code or None, text or f"no answer within {limit:g} s")
        elif not code:
            if error == pycurl.E_OPERATION_TIMEDOUT:
                out = (
                    Outcome("timeout", detail="no answer within the timeout")
                    if idle
                    else Outcome("timeout", detail="connect timed out", retry=True)
                )
            else:
                status, detail, retry = failure(error, os_errno)
                out = Outcome(status, detail=detail, retry=retry)
        elif code in REDIRECTS:
            self._redirect(task, code, task.answer(code, None).header("location"))
            return
        else:
            broke = None
            if error:
                broke = ("timeout", "body read timed out") if idle else None
                broke = broke or ("truncated", broke_off(error, os_errno))
            out = self._final_answer(task, task.answer(code, broke))
        self._end_attempt(task, out)

    def _final_answer(self, task: Task, answer: Answer) -> Outcome:
        final = task.current if task.current != task.url else None
        if not isinstance(task.job, FileJob):
            return self.classifier.classify(answer, task.url, final)
        if not 200 <= answer.code < 300:
            return status_outcome(answer, final)
        if answer.broke is not None:
            detail = answer.broke[1] if answer.broke[0] == "truncated" else "transfer stalled"
            return Outcome("truncated", answer.code, detail, final)
        return Outcome("ok", answer.code, f"{min(len(answer.body), task.cap)} bytes", final)

    def _redirect(self, task: Task, code: int, location: str) -> None:
        if not location:
            self._end_attempt(task, Outcome("http_error", code, "redirect without Location"))
            return
        current = task.current = urljoin(task.current, location)
        if self.classifier.placeholder(current):
            text = "redirects to a known 'photo unavailable' image"
            self._end_attempt(task, Outcome("placeholder", code, text, current))
        elif current in task.seen:
            self._end_attempt(task, Outcome("redirects", code, "redirect loop", current))
        elif task.hops >= self.s.max_redirects:
            text = f"more than {self.s.max_redirects} redirects"
            self._end_attempt(task, Outcome("redirects", None, text, current))
        else:
            task.seen.add(current)
            task.hops += 1
            self._hop(task, held=None)

    def _release(self, server: str) -> None:
        """A request to ``server`` is over: its slot goes to a hop waiting for it, else back."""
        self.sched.done(server, time.monotonic())
        waiting = self.waiting.get(server)
        while waiting and self.sched.enter(server):
            task, url, port = waiting.pop(0)
            self._send(task, server, url, port)

    def _end_attempt(self, task: Task, out: Outcome) -> None:
        """Retry a retryable outcome after its wait (pausing the server), or decide the job."""
        s = self.s
        if out.retry and task.attempt < s.retries and not isinstance(task.job, FileJob):
            wait = out.retry_after
            if wait is None:
                wait = s.backoff_seconds * (2**task.attempt)
            if wait <= s.max_retry_after_seconds or out.retry_after is None:
                now = time.monotonic()
                self.sched.pause(task.key, wait, now)
                task.attempt += 1
                heapq.heappush(self.retries, (now + wait, id(task), task))
                return
            out = out._replace(detail=f"{out.detail}; Retry-After {wait:g} s exceeds the cap")
        if task.attempt and out.retry:
            out = out._replace(detail=f"{out.detail} (after {task.attempt + 1} attempts)")
        self._final(task, out)

    def _final(self, task: Task, out: Outcome) -> None:
        if isinstance(task.job, FileJob):
            body = b"".join(task.body)[: task.cap] if out.status == "ok" else b""
            fetched = host_file(task.job.origin, task.job.path, out, body)
            self.active -= 1
            if fetched is not None:
                self.out.append(fetched)
            return
        probe = UrlProbe(
            task.url,
            out.status,
            out.http_status,
            out.detail,
            out.final_url,
            time.time(),
            out.reservations,
            out.sha256,
            out.size,
        )
        self.health.saw(task.host, probe)
        self._decided(task, probe)

    def _decided(self, task: Task, probe: UrlProbe) -> None:
        self.active -= 1
        self.out.append(probe)


_PLACEHOLDER = "the URL is a known placeholder image"
