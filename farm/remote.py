"""A worker host: the trusted process that adds one machine's workers to a farm elsewhere.

``derender farm join --connect tcp://FARM:5556 --server-key farm.key --keys host.key_secret
--workers N [--role step] [--config farm.toml]`` runs a :class:`WorkerHost`. The host holds
the CURVE keys and the network; its workers hold neither. It runs a
:class:`.supervisor.Supervisor` exactly as the farm does (each worker in the OS sandbox:
no network, uid 65534, its own PID namespace, a cleared environment, only the host's
``ipc://`` socket directory bound in), binds that socket in a private run dir, and relays
frames both ways between each worker and the farm's CURVE ``remote_backend``::

    worker s0-1-… ─DEALER─► host ROUTER (ipc) ═ relay ═ DEALER "NAME.s0-1-…"    ─CURVE─► farm
                                                      DEALER "NAME.s0-1-…#hb" ─CURVE─►

The broker sees what it sees of any remote worker: one identity per worker (the host's
name, a dot, the supervisor's random identity), its ``ready`` with role and frame, its
heartbeats on ``#hb``, and results only from the worker a job went to. The host accepts
frames on its ipc socket only under the identities its supervisor gave (an escaped worker
that connects again as someone else is not relayed).

Failures, as for local workers:

- a worker dies: the host closes its two connections (its heartbeat stops, the broker
  retries its job elsewhere) and the supervisor restarts it, with backoff unless it died
  during a job; the new worker joins under a new identity;
- the farm drops a worker (hard deadline, recycling, no heartbeat, wrong frame): the
  broker says ``exit`` and the host kills and restarts it;
- the farm is unreachable: ZeroMQ reconnects; after each new CURVE handshake the host says
  the worker's ``ready`` again (after the result it owes, if it was busy), so a farm that
  forgot the worker, or restarted, adopts it again; its workers keep running meanwhile;
- the host dies, even by SIGKILL: its workers die with it (``PR_SET_PDEATHSIG`` on bwrap,
  ``--die-with-parent`` inside) and their connections close;
- the farm refuses the host's key: nothing of the host is ever relayed, and it stops
  (:class:`FarmRefused`) naming its public key; the farm reads its ``curve_clients`` when
  it starts, so an added key takes a farm restart.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..protocol import codec
from ..protocol.errors import ProtocolError
from ..protocol.transport import drain
from .config import FarmConfig
from .host_link import FarmLink, host_name
from .jobs import ROLES, STEP
from .supervisor import Supervisor, WorkerProcess

log = logging.getLogger(__name__)

# What the host watches on each worker's connection. A refused key (AUTH) is final:
# libzmq does not retry it. A wrong server key fails with NO_DETAIL and is retried.
_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
)


class UnknownRole(ValueError):
    """A worker host was asked for workers of a role the farm does not have."""


class FarmRefused(RuntimeError):
    """The farm refused this host's key: none of its workers can ever join."""


@dataclass(eq=False)
class Relay:
    """One hosted worker's two connections to the farm, and what the host knows of it."""

    worker: WorkerProcess
    main: zmq.Socket  # jobs and results, under the worker's farm identity
    beat: zmq.Socket  # its heartbeats, under that identity + "#hb"
    events: zmq.Socket  # the monitor of ``main``: handshakes and disconnects
    ready: list[bytes] | None = None  # its first message (`ready`), said again on rejoin
    handshakes: int = 0
    connected: bool = False
    busy: bool = False  # a job went to the worker and its result has not come back
    rejoin: bool = False  # reconnected while busy: say `ready` after the result
    worked: bool = False  # it returned a result

    def close(self) -> None:
        self.main.disable_monitor()
        for sock in (self.main, self.beat, self.events):
            sock.close(0)


class WorkerHost:
    """N sandboxed workers of one role on this machine, relayed to a farm over CURVE."""

    def __init__(
        self,
        config: FarmConfig,
        link: FarmLink,
        role: str = STEP,
        workers: int = 1,
        name: str | None = None,
        context: zmq.Context | None = None,
        node: str | None = None,
    ) -> None:
        """``config``: the farm's (its frame and deadlines; its endpoints and keys are not
        passed on to the workers). ``node``: where the farm's status says its workers run
        (default: the host name; a Ray node id for :mod:`.ray_farm`)."""
        if role not in ROLES:
            raise UnknownRole(f"role must be one of {ROLES}, got {role!r}")
        self.link = link
        self.role = role
        self.name = host_name(name)
        self.node = node or self.name
        own = replace(
            config,
            bind=(),
            remote_backend=None,
            monitor=None,
            curve_secret=None,
            curve_clients=None,
        )
        if role == STEP:
            self.config = replace(own, workers=workers)
        else:
            self.config = replace(own, target_workers=workers)
        first = 0 if role == STEP else self.config.workers  # Supervisor.role(slot) is ours
        self.slots = range(first, first + workers)
        self.run_dir = Path(tempfile.mkdtemp(prefix="derender-host-"))  # 0700
        self._ctx = context or zmq.Context.instance()
        self.backend = self._ctx.socket(zmq.ROUTER)
        self.backend.setsockopt(zmq.LINGER, 0)
        self.backend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        directory = self.run_dir / role
        directory.mkdir()
        self.backend_address = f"ipc://{directory / 'backend.sock'}"
        try:
            self.backend.bind(self.backend_address)
            # The supervisor wants a backend per role; this host serves one role only.
            self.supervisor = Supervisor(
                self.config, self.run_dir, {r: self.backend_address for r in ROLES}
            )
        except BaseException:
            self.backend.close(0)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        self.relays: dict[str, Relay] = {}  # the supervisor's identity -> relay
        self.handshake_failed = False  # logged once: a wrong server key fails forever
        self._poller = zmq.Poller()
        self._poller.register(self.backend, zmq.POLLIN)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        for slot in self.slots:
            self._open(self.supervisor.spawn(slot))
        log.info(
            "worker host %s: %d %s workers (OS-sandboxed: %s) joining %s",
            self.name,
            len(self.slots),
            self.role,
            self.supervisor.os_sandboxed,
            self.link.address,
        )

    def close(self) -> None:
        self.supervisor.stop()
        for relay in self.relays.values():
            relay.close()
        self.relays.clear()
        self.backend.close(0)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def farm_identity(self, worker: WorkerProcess) -> str:
        return f"{self.name}.{worker.identity}"

    def _open(self, worker: WorkerProcess) -> None:
        remote = self.farm_identity(worker)
        main = self.link.socket(self._ctx, remote)
        beat = self.link.socket(self._ctx, f"{remote}#hb")
        beat.setsockopt(zmq.SNDHWM, 4)  # beats for an unreachable farm must not pile up
        events_address = f"inproc://relay-events.{remote}"
        main.monitor(events_address, _EVENTS)
        events = self._ctx.socket(zmq.PAIR)
        events.connect(events_address)
        main.connect(self.link.address)
        beat.connect(self.link.address)
        relay = Relay(worker, main, beat, events)
        self.relays[worker.identity] = relay
        self._poller.register(main, zmq.POLLIN)
        self._poller.register(events, zmq.POLLIN)

    def _drop(self, relay: Relay, blame: bool) -> None:
        """Close ``relay`` and have the supervisor replace its worker."""
        self.relays.pop(relay.worker.identity, None)
        self._poller.unregister(relay.main)
        self._poller.unregister(relay.events)
        relay.close()
        self.supervisor.restart(relay.worker.slot, blame=blame)

    # -- the loop -------------------------------------------------------------------
    def run_once(self, wait_s: float = 0.05) -> None:
        """One iteration: relay what arrived both ways, then replace dead workers."""
        events = dict(self._poller.poll(int(wait_s * 1000)))
        if self.backend in events:
            drain(self.backend, self._from_worker)
        for relay in list(self.relays.values()):
            if relay.events in events:
                self._on_event(relay)
            if relay.main in events:
                drain(relay.main, lambda frames, r=relay: self._from_farm(r, frames))
        self._supervise()

    def _from_worker(self, frames: list[Any]) -> None:
        """A frame list from a worker on the ipc socket: relay it under its farm identity."""
        identity = frames[0].decode(errors="replace")
        relay = self.relays.get(identity.removesuffix("#hb"))
        if relay is None:  # a dead worker's last words, or a stranger on the socket
            return
        body = frames[1:]
        if identity.endswith("#hb"):
            _send(relay.beat, body)
            return
        if relay.ready is None:  # a worker's first message must say `ready`
            relay.ready = self._ready(body, relay.worker)
            if relay.ready is None:  # not the protocol: a worker not to be trusted further
                log.warning("worker %s spoke before `ready`: replaced", relay.worker.identity)
                self._drop(relay, blame=True)
                return
            log.info("worker %s is ready", self.farm_identity(relay.worker))
            body = relay.ready
        else:  # every later one is a job's result
            relay.busy, relay.worked = False, True
            self.supervisor.healthy(relay.worker.slot)
        _send(relay.main, body)
        if relay.rejoin and not relay.busy:
            relay.rejoin = False
            _send(relay.main, relay.ready)

    def _ready(self, body: list[bytes], worker: WorkerProcess) -> list[bytes] | None:
        """The ``ready`` to relay: with the worker's host pid (its own is 2, in its PID
        namespace), this host's node and the worker's GPU, for the farm's status."""
        where = {
            "pid": worker.host_pid(),
            "node": self.node,
            "gpu": self.supervisor.launcher.gpu(worker.slot),
        }
        return _ready_from_host(body, where)

    def _from_farm(self, relay: Relay, frames: list[Any]) -> None:
        """A job (or ``exit``) from the broker for ``relay``'s worker."""
        try:
            kind = codec.decode_header(frames[0]).get("kind")
        except (ProtocolError, IndexError):
            log.warning("unreadable message from the farm for %s: dropped", relay.worker.identity)
            return
        if kind == "exit":  # the farm dropped this worker: replace it
            idle_from_birth = not relay.worked and not relay.busy
            if idle_from_birth:
                log.warning(
                    "the farm dropped worker %s before giving it any work (does this "
                    "host's config match the farm's engine, size and frame?)",
                    self.farm_identity(relay.worker),
                )
            self._drop(relay, blame=idle_from_birth)
            return
        relay.busy = True
        try:
            self.backend.send_multipart([relay.worker.identity.encode(), *frames], zmq.NOBLOCK)
        except zmq.ZMQError:  # the worker is gone: _supervise replaces it
            pass

    def _on_event(self, relay: Relay) -> None:
        """What happened to ``relay``'s connection; FarmRefused if the farm refused the key."""
        while relay.events.poll(0):
            event = recv_monitor_message(relay.events)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._joined(relay)
            elif event == zmq.EVENT_DISCONNECTED and relay.connected:
                relay.connected = False
                log.warning("worker %s lost the farm; reconnecting", relay.worker.identity)
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise FarmRefused(
                    f"the farm at {self.link.address} refused this host's key "
                    f"{self.link.keys.public.decode()}: copy its .key file into the farm's "
                    "curve_clients directory and restart the farm"
                )
            elif event != zmq.EVENT_DISCONNECTED and not self.handshake_failed:
                self.handshake_failed = True  # retried by ZeroMQ: say it once
                log.error(
                    "the CURVE handshake with the farm at %s fails: is --server-key the "
                    "public key of that farm's curve_secret?",
                    self.link.address,
                )

    def _joined(self, relay: Relay) -> None:
        """A CURVE handshake succeeded: a farm that forgot the worker adopts it again."""
        relay.connected = True
        relay.handshakes += 1
        if relay.handshakes == 1:
            log.info("worker %s joined the farm", self.farm_identity(relay.worker))
            return
        if relay.ready is None:
            return
        # ... but not while it runs a job: a new broker numbers its jobs from 1 too and
        # could take that job's result for one of its own
        during = " during a job: it rejoins after the result" if relay.busy else ""
        log.info("worker %s reconnected%s", self.farm_identity(relay.worker), during)
        if relay.busy:
            relay.rejoin = True
        else:
            _send(relay.main, relay.ready)

    def _supervise(self) -> None:
        for worker in self.supervisor.exited():
            relay = self.relays[worker.identity]
            log.warning("worker %s exited (status %s)", worker.identity, worker.proc.returncode)
            self._drop(relay, blame=not relay.busy)  # a death during a job: no backoff
        now = time.monotonic()
        for relay in list(self.relays.values()):
            if relay.ready is None and now - relay.worker.started > self.config.start_timeout:
                timeout = self.config.start_timeout
                log.warning("worker %s not ready after %g s", relay.worker.identity, timeout)
                self._drop(relay, blame=True)
        for worker in self.supervisor.spawn_due():
            self._open(worker)


def _ready_from_host(body: list[bytes], where: dict[str, Any]) -> list[bytes] | None:
    """A worker's ``ready`` with what its host knows of it (``where``), over anything the
    worker said of itself; None if ``body`` is not a ``ready``."""
    try:
        header = codec.decode_header(body[0])
    except (ProtocolError, IndexError):
        return None
    if header.get("kind") != "ready" or len(body) != 1:
        return None
    return codec.encode({**header, **where})


def _send(sock: zmq.Socket, frames: list[Any]) -> None:
    """Send without blocking; a full queue (the farm unreachable for long) drops."""
    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
    except zmq.Again:
        pass


def run_host(host: WorkerHost) -> int:
    """Start ``host`` and relay until SIGTERM or SIGINT (0) or until the farm refuses
    its key (FarmRefused); always kills its workers."""
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        host.start()
        while not stopping:
            host.run_once()
        log.info("worker host %s: stopping (signal %d)", host.name, stopping[0])
        return 0
    finally:
        host.close()
        for s, handler in old.items():
            signal.signal(s, handler)
