"""The farm process: a broker with its supervisor, in the foreground until SIGTERM/SIGINT.

``derender farm`` calls :func:`run_farm` directly; :class:`.local.LocalFarm` runs
``python -m derender.farm.run --config JSON --run-dir DIR --address-file FILE`` as a
subprocess and reads the bound address from the file (written atomically once the farm
listens, so a free port chosen by the OS can be handed back).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from threadpoolctl import threadpool_limits

from ..scenes import Scene
from .config import FarmConfig

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger("derender.farm")


def run_farm(
    config: FarmConfig,
    run_dir: str | Path | None = None,
    address_file: str | Path | None = None,
    datasets: Mapping[str, Sequence[Scene]] | None = None,
    owner_pid: int | None = None,
    ready: Callable[[Broker], object] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT (or, with ``owner_pid``, until that process is no
    longer this one's parent); always kills the workers and removes temp dirs.
    ``ready(broker)`` is called once the farm listens and its workers are starting."""
    from .broker import Broker

    own_dir = run_dir is None
    root = Path(tempfile.mkdtemp(prefix="derender-farm-")) if run_dir is None else Path(run_dir)
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    # The reward stage's filters are BLAS products of small matrices (64 px images), and
    # OpenBLAS's threads, one per core, spin-wait between them on the cores the workers
    # render on: one worker at 32 px, the farm process took 36 ms of CPU per step with
    # them and 4 with one thread (``derender bench farm``: "CPU per step").
    blas = threadpool_limits(limits=1, user_api="blas")
    broker = None
    try:
        broker = Broker(config, root, datasets)
        broker.start()
        if address_file is not None:
            tmp = Path(f"{address_file}.tmp")
            tmp.write_text(broker.address)
            os.replace(tmp, address_file)
        if ready is not None:
            ready(broker)
        log.info(
            "farm: %d %s workers at %d px; clients connect to %s",
            config.workers,
            config.engine,
            config.size,
            broker.address,
        )
        while not stopping:
            broker.run_once(0.05)
            # The owner's pid comes from the owner: if it died while this process was
            # still starting, reading getppid() here would already see the reaper's pid.
            if owner_pid is not None and os.getppid() != owner_pid:  # orphaned
                stopping.append(signal.SIGHUP)
        log.info("farm: stopping (signal %d)", stopping[0])
        return 0
    finally:
        blas.restore_original_limits()
        if broker is not None:
            broker.close()
        for s, handler in old.items():
            signal.signal(s, handler)
        if own_dir or stopping[:1] == [signal.SIGHUP]:  # an orphan cleans up for its owner
            shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m derender.farm.run")
    parser.add_argument("--config", required=True, help="FarmConfig as JSON")
    parser.add_argument("--run-dir", help="directory for worker temp dirs and sockets")
    parser.add_argument("--address-file", help="write the client address here when ready")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--owner-pid", type=int, help="stop when this process (the parent) dies; LocalFarm uses it"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = FarmConfig.from_dict(json.loads(args.config))
    return run_farm(config, args.run_dir, args.address_file, owner_pid=args.owner_pid)


if __name__ == "__main__":
    raise SystemExit(main())
