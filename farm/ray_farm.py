"""RayFarm: the farm's step workers as Ray actors, placed and restarted by Ray.

For a trainer that already runs on a Ray cluster (verl, OpenRLHF)::

    with RayFarm(workers=16, workers_per_gpu=2, engine="eevee", size=128) as farm:
        client = Client(farm.address)            # or broker_address() in any Ray task

The broker stays the single entry point, with the reward stage and the target workers,
on the driver's node: a :class:`.local.LocalFarm` with no step workers of its own and a
CURVE ``remote_backend`` on the driver's node address. Each step worker is one Ray actor
(:class:`HostActor`) that runs a :class:`.remote.WorkerHost` with ONE worker: the same
trusted host as ``derender farm join``, so the worker process is in the OS sandbox (no
network, uid 65534, its own PID namespace, a cleared environment) and only the actor holds
keys. The driver makes a farm key pair and one host key pair in a private temp dir; the
actors get the host's secret key and the farm's public key in their constructor (they
never touch the actors' disks; the host's secret file is deleted once read).

What Ray adds:

- placement: each actor asks for ``num_cpus``, ``num_gpus`` (``1 / workers_per_gpu``:
  fractional GPUs put several workers on one), custom ``resources`` and a node
  ``label_selector``; actors are spread over the nodes (``SPREAD``);
- restarts: an actor whose process or node dies is restarted by Ray (``max_restarts``,
  default forever) where resources allow; its new worker joins under a new identity. The
  broker's guarantees hold across nodes: the lost worker's job is retried once on another
  worker after ``heartbeat_timeout``, and a script that kills every worker it lands on
  ends ``poisoned``;
- GPU pinning: the GPU ids Ray assigns an actor become the host's ``FarmConfig.gpus``,
  so its sandboxed worker gets only that GPU's device nodes (:mod:`.gpu_devices`);
- discovery: a named actor (:data:`BROKER_ACTOR` in :data:`NAMESPACE`) answers the
  broker's client address, for reward functions that run in other Ray processes
  (:func:`broker_address`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..protocol.keys import KeyPair, create_keypair, load_keys
from .config import FarmConfig, endpoints
from .host_link import FarmLink, check_key_hidden
from .jobs import STEP
from .local import LocalFarm
from .remote import WorkerHost

log = logging.getLogger(__name__)

NAMESPACE = "derender"
BROKER_ACTOR = "derender-broker"  # the named actor that answers the broker's address
ADDRESS_VARIABLE = "DERENDER_ADDRESS"


class BadGPUId(ValueError):
    """Ray assigned a GPU id that is not an index (a UUID in CUDA_VISIBLE_DEVICES?)."""


class WorkersNotReady(TimeoutError):
    """Not every actor's worker joined the broker in time."""


def gpu_indices(ray_ids: Sequence[str]) -> tuple[int, ...]:
    """Ray's GPU ids of an actor as the GPU indices ``FarmConfig.gpus`` takes.

    Ray's ids are the node's GPU indices (nvidia-smi's order, which is PCI bus order, as
    :func:`.gpu_devices.gpu_mounts` counts), or the entries of ``CUDA_VISIBLE_DEVICES``
    the raylet was started with: those must be indices too, not UUIDs."""
    try:
        return tuple(int(i) for i in ray_ids)
    except ValueError:
        raise BadGPUId(
            f"Ray assigned GPU ids {list(ray_ids)!r}; pinning needs indices: start the "
            "raylet with CUDA_VISIBLE_DEVICES=0,1,… (not GPU UUIDs) or without it"
        ) from None


class HostActor:
    """One Ray actor: a worker host with one sandboxed step worker, joined to the broker.

    Every call on the :class:`WorkerHost` comes from one long-lived thread: the workers'
    ``PR_SET_PDEATHSIG`` fires when the thread that forked them exits, and the supervisor
    restarts workers from the loop. If the loop fails, the actor's process exits, so Ray
    restarts the actor (its workers die with it)."""

    def __init__(
        self, config: dict[str, Any], backend: str, server_key: bytes, keys: KeyPair, name: str
    ) -> None:
        context = ray.get_runtime_context()
        self.node = context.get_node_id()
        self.gpus = gpu_indices(context.get_accelerator_ids().get("GPU", []))
        farm_config = replace(FarmConfig.from_dict(config), gpus=self.gpus)
        link = FarmLink(backend, server_key, keys)
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._host: WorkerHost | None = None
        self._thread = threading.Thread(
            target=self._run, args=(farm_config, link, name), name="derender-host", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure

    def _run(self, config: FarmConfig, link: FarmLink, name: str) -> None:
        host = None
        try:
            host = self._host = WorkerHost(config, link, STEP, workers=1, name=name, node=self.node)
            host.start()
        except BaseException as exc:
            if host is not None:
                host.close()
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        try:
            while not self._stopping.is_set():
                host.run_once()
        except BaseException:
            log.exception("worker host %s failed: exiting for Ray to restart it", name)
            host.close()
            os._exit(1)
        host.close()

    def where(self) -> dict[str, Any]:
        """This actor's node, GPUs, process and its worker's farm identity."""
        host = self._host
        workers = [] if host is None else list(host.relays.values())
        return {
            "node": self.node,
            "gpus": list(self.gpus),
            "pid": os.getpid(),
            "workers": [host.farm_identity(r.worker) for r in workers if host is not None],
        }

    def stop(self) -> None:
        """Kill the worker and close the host's connections."""
        self._stopping.set()
        self._thread.join(timeout=30)


class BrokerDirectory:
    """The named actor that tells any process on the cluster where the broker is."""

    def __init__(self, address: str) -> None:
        self._address = address

    def address(self) -> str:
        return self._address


def broker_address(namespace: str = NAMESPACE, name: str = BROKER_ACTOR) -> str:
    """The broker's client address: ``$DERENDER_ADDRESS`` if set, else the named actor's
    answer (call it inside a Ray driver, task or actor of the same cluster)."""
    if os.environ.get(ADDRESS_VARIABLE):
        return os.environ[ADDRESS_VARIABLE]
    directory = ray.get_actor(name, namespace=namespace)
    return str(ray.get(directory.address.remote()))


class RayFarm:
    """A broker on this node and ``workers`` step workers as Ray actors (module docstring)."""

    def __init__(
        self,
        workers: int = 2,
        engine: str | None = None,
        size: int = 128,
        *,
        ray_address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        workers_per_gpu: int | None = None,
        resources: Mapping[str, float] | None = None,
        label_selector: Mapping[str, str] | None = None,
        max_restarts: int = -1,
        backend_host: str | None = None,
        namespace: str = NAMESPACE,
        bind: str | Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        """``options``: :class:`FarmConfig` fields, as for :class:`LocalFarm`;
        ``workers_per_gpu=K`` is ``num_gpus=1/K``; ``backend_host``: the address actors
        reach this node on (default: Ray's address of the driver's node); ``ray_address``
        is passed to ``ray.init`` when Ray is not initialised yet ("local": start a Ray of
        its own on this machine, on 127.0.0.1)."""
        if workers < 1:
            raise ValueError(f"a RayFarm needs at least 1 worker, got {workers!r}")
        if workers_per_gpu is not None:
            if workers_per_gpu < 1:
                raise ValueError(f"workers_per_gpu must be >= 1, got {workers_per_gpu!r}")
            num_gpus = 1.0 / workers_per_gpu
        if engine is not None:
            options["engine"] = engine
        self.config = FarmConfig(workers=workers, size=size, bind=endpoints(bind), **options)
        self.workers = workers
        self.ray_address = ray_address
        self.actor_options: dict[str, Any] = {
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "resources": dict(resources or {}),
            "max_restarts": max_restarts,
            "scheduling_strategy": "SPREAD",
        }
        if label_selector:
            self.actor_options["label_selector"] = dict(label_selector)
        self.backend_host = backend_host
        self.namespace = namespace
        self.address = ""
        self.actors: list[Any] = []
        self.directory: Any = None
        self.farm: LocalFarm | None = None
        self._keys_dir: Path | None = None
        self._owns_ray = False

    def start(self, timeout: float = 300.0) -> RayFarm:
        """Start the broker, then the actors; return once every actor's worker is ready."""
        if self.farm is not None:
            raise RuntimeError(f"this RayFarm is already running at {self.address}")
        if self.ray_address == "local" and not ray.is_initialized():
            # a Ray of its own on this machine, on loopback only (Ray would otherwise
            # advertise the host's address), without the dashboard
            ray.init(
                address="local",
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                log_to_driver=False,
            )
            self._owns_ray = True
        elif not ray.is_initialized():
            ray.init(address=self.ray_address, log_to_driver=False)
            self._owns_ray = True
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self._keys_dir = Path(tempfile.mkdtemp(prefix="derender-ray-keys-"))  # 0700
        _, farm_secret = create_keypair(self._keys_dir, "farm")
        check_key_hidden(farm_secret, self.config.blender)
        host_public, host_secret = create_keypair(self._keys_dir / "host", "ray-hosts")
        clients = self._keys_dir / "clients"
        clients.mkdir()
        shutil.copy(host_public, clients / host_public.name)
        host_keys = load_keys(host_secret)
        shutil.rmtree(host_secret.parent)  # from now on in memory only (and in the actors)
        host = self.backend_host or ray.util.get_node_ip_address()
        local = replace(
            self.config,
            workers=0,
            remote_backend=f"tcp://{host}:*",
            curve_secret=str(farm_secret),
            curve_clients=str(clients),
        )
        self.farm = LocalFarm(**local.to_dict()).start(timeout)
        self.address = self.farm.address
        backend = self.farm.status()["remote_backend"]
        self.directory = (
            ray.remote(BrokerDirectory)
            .options(
                name=BROKER_ACTOR,
                namespace=self.namespace,
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(
                    ray.get_runtime_context().get_node_id(), soft=True
                ),
            )
            .remote(self.address)
        )
        actor = ray.remote(HostActor).options(**self.actor_options)
        server_key = load_keys(self._keys_dir / "farm.key").public
        # the hosts keep the frame and deadlines of the config, never its endpoints or keys
        self.actors = [
            actor.remote(self.config.to_dict(), backend, server_key, host_keys, f"ray{i}")
            for i in range(self.workers)
        ]
        # an actor whose constructor failed (a GPU that is not there) raises its error here
        ray.get([a.where.remote() for a in self.actors], timeout=timeout)
        self.wait_ready(self.workers, timeout)

    def remote_workers(self) -> list[dict[str, Any]]:
        """The status entries of the actors' workers (the farm's own have a slot)."""
        assert self.farm is not None
        return [w for w in self.farm.status()["workers"] if w["slot"] is None]

    def wait_ready(self, count: int, timeout: float = 300.0) -> list[dict[str, Any]]:
        """Wait until ``count`` actors' workers are ready; return their status entries."""
        deadline = time.monotonic() + timeout
        while True:
            ready = [w for w in self.remote_workers() if w["state"] != "starting"]
            if len(ready) >= count:
                return ready
            if time.monotonic() > deadline:
                raise WorkersNotReady(
                    f"{len(ready)} of {count} Ray workers were ready after {timeout:g} s"
                )
            time.sleep(0.2)

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The broker's ``status`` reply (each worker with its Ray node and GPU)."""
        assert self.farm is not None
        return self.farm.status(timeout)

    def stop(self) -> None:
        """Stop the actors (their workers die with them), the broker, and delete the keys;
        shut Ray down if :meth:`start` initialised it. Idempotent."""
        if self.actors:
            try:
                ray.get([a.stop.remote() for a in self.actors], timeout=60)
            except Exception:  # a dead or unreachable actor: kill it below anyway
                log.warning("not every Ray worker host stopped cleanly", exc_info=True)
        for handle in [*self.actors, self.directory]:
            if handle is not None:
                ray.kill(handle, no_restart=True)
        self.actors, self.directory = [], None
        if self.farm is not None:
            self.farm.stop()
            self.farm = None
        if self._keys_dir is not None:
            shutil.rmtree(self._keys_dir, ignore_errors=True)
            self._keys_dir = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayFarm:
        return self.start() if self.farm is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
