"""Ray clusters: joining one, what each job asks of it, and a job's files on a node of its own.

No shared filesystem is assumed. Every job runs on its node through `run_shipped`: when the
node sees the driver's store (the same disk, e.g. HARNESS_ARTIFACTS on NFS, or a local Ray)
the job runs on the driver's paths and nothing is copied. Otherwise the node works in its own
store (its HARNESS_ARTIFACTS / HARNESS_RESULTS): each input the job names (prepared data set,
feature set, RAT teachers, a checkpoint to resume from) is fetched from the driver once per node
through a `FileServer` actor on the driver's node, and whatever the job wrote (a run's metrics,
per-user file and manifest; feature sets, adapters, teachers) comes back in its result and is
written into the driver's store by `receive`. Store folders are named by content keys, so a
folder a node already holds is the one the driver means.

A worker node lost mid-build loses only its running jobs: Ray runs them again on another node
(`max_retries`), while a job that fails by its own fault (an exception) is reported, not retried.
"""
from __future__ import annotations

import io
import os
import platform
import tarfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from protocol.config import artifacts_dir, raw_dir, results_dir
from protocol.errors import HarnessError
from protocol.fileio import atomic_dir, atomic_path

ADDRESS_ENV = "RAY_ADDRESS"
STORE_ID = ".harness-store-id"  # names one store; a node that reads the driver's id shares its disk
NODE_ENV = "HARNESS_NODE"  # which node runs this process's job (recorded in manifests)
# What a node writes that the driver needs back, finished store entries (never scratch): the folder
# or file at each depth, e.g. runs/<key>, features/<data set>/<extractor>/<key>, rat/<teacher>.npy.
RETURNED = {"results": {"runs": 1}, "artifacts": {"datasets": 1, "features": 3, "adapters": 2, "rat": 1}}
RETRIES = 3  # runs of a job whose node died; a job that raises is not run again


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at `address` (or $RAY_ADDRESS); without either, start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get(ADDRESS_ENV) or None
    if address is None:  # "local": a new instance, never a cluster an earlier session left recorded
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        return
    fix = (f"check the address (`ray status` on the head node prints it) and, for a cluster started with "
           "RAY_AUTH_MODE=token, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH to a copy of its token "
           "file (`ray get-auth-token` on the head) before this command (docs/distributed.md)")
    try:
        ray.init(address=address, log_to_driver=False)
    except ray.exceptions.AuthenticationError as err:
        raise HarnessError(f"the Ray cluster at {address} refused this driver's token ({_first_line(err)}); "
                           f"{fix}.") from None
    except ConnectionError as err:
        raise HarnessError(f"cannot join a Ray cluster at {address} ({_first_line(err)}); {fix}.") from None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__


@dataclass(frozen=True)
class Roots:
    """A store's folders (artifacts, results, the raw files beside them) and its id."""

    artifacts: str
    results: str
    raw: str
    store_id: str = ""

    @classmethod
    def here(cls) -> "Roots":
        """This process's store (its environment's HARNESS_ARTIFACTS, HARNESS_RESULTS, HARNESS_RAW)."""
        return cls(str(artifacts_dir()), str(results_dir()), str(raw_dir()))

    @classmethod
    def driver(cls) -> "Roots":
        """The driver's store, its id made once and kept in the store itself."""
        roots = cls.here()
        path = Path(roots.artifacts) / STORE_ID
        if not path.exists():
            with atomic_path(path) as tmp:
                tmp.write_text(uuid.uuid4().hex)
        return replace(roots, store_id=path.read_text().strip())

    def sees(self, driver: "Roots") -> bool:
        """Whether this process reads the driver's store: a shared disk, nothing to copy."""
        try:
            return (Path(driver.artifacts) / STORE_ID).read_text().strip() == driver.store_id
        except OSError:
            return False

    def local(self, driver: "Roots", path: str) -> Path:
        """The node's counterpart of one of the driver's store paths (same place under its root)."""
        for mine, theirs in ((self.artifacts, driver.artifacts), (self.results, driver.results), (self.raw, driver.raw)):
            if Path(path).is_relative_to(theirs):
                return Path(mine) / Path(path).relative_to(theirs)
        raise HarnessError(f"{path} lies outside the driver's store and raw folder ({driver.artifacts}, "
                           f"{driver.results}, {driver.raw}); a job on a cluster node reads its inputs from there.")


def pack(path: str) -> bytes:
    """A file or folder as tar bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=Path(path).name)
    return buffer.getvalue()


def unpack(data: bytes, target: Path) -> None:
    """Tar bytes of one file or folder onto `target`, atomically; an existing target is kept."""
    if target.exists():
        return
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        top, *inside = tar.getmembers()
        if not top.isdir():
            with atomic_path(target) as tmp:
                tmp.write_bytes(tar.extractfile(top).read())
            return
        for member in inside:  # the folder's content, without the folder's own name
            member.name = str(Path(member.name).relative_to(top.name))
        with atomic_dir(target) as tmp:
            tar.extractall(tmp, members=inside, filter="data")


class FileServer:
    """A Ray actor on the driver's node that hands out files of the driver's store."""

    def read(self, path: str) -> bytes | None:
        return pack(path) if Path(path).exists() else None

    def glob(self, folder: str, pattern: str) -> list[str]:
        return sorted(str(p) for p in Path(folder).glob(pattern))


@dataclass
class Shipped:
    """A job as it travels to a node: the task, its job, and where the driver's files come from."""

    task: object  # a picklable top-level function taking the job
    job: object  # with `inputs()` and `on_node(translate)` (see harness.executors.Job)
    driver: Roots
    server: object = None  # the FileServer actor handle


@dataclass
class Returned:
    """What a node sends back: the task's value, the files it wrote, where it ran."""

    value: object
    node: str
    files: dict[str, bytes] = field(default_factory=dict)  # "artifacts/..." or "results/..." -> tar bytes


def node_name() -> str:
    """This node as the logs and manifests name it: host name and Ray node id."""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()[:12] if ray.is_initialized() else ""
    except Exception:  # not in a Ray worker
        node = ""
    return f"{platform.node()}/{node}" if node else platform.node()


class NodeStore:
    """A node's side of a shipped job: the driver's store paths as this node's, fetched on first use."""

    def __init__(self, here: Roots, driver: Roots, server):
        self.here, self.driver, self.server = here, driver, server

    def place(self, path: str) -> str:
        """Where the node keeps the driver's `path` (nothing fetched)."""
        return str(self.here.local(self.driver, path))

    def fetch(self, path: str) -> str:
        """The node's copy of the driver's `path`, fetched once (a missing one stays missing)."""
        import ray

        local = Path(self.place(path))
        if not local.exists():
            data = ray.get(self.server.read.remote(path))
            if data is not None:
                local.parent.mkdir(parents=True, exist_ok=True)
                unpack(data, local)
        return str(local)

    def glob(self, folder: str, pattern: str) -> list[str]:
        """The driver's files in `folder` matching `pattern`."""
        import ray

        return ray.get(self.server.glob.remote(folder, pattern))


def run_shipped(shipped: Shipped) -> Returned:
    """Worker entry point on a cluster node: run the job where its inputs are, send back its outputs."""
    os.environ[NODE_ENV] = node_name()
    here = Roots.here()
    if here.sees(shipped.driver):
        return Returned(shipped.task(shipped.job), os.environ[NODE_ENV])
    job = shipped.job.on_node(NodeStore(here, shipped.driver, shipped.server))
    before = _finished(here)
    value = shipped.task(job)
    files = {name: pack(str(_path(here, name))) for name, stamp in _finished(here).items() if before.get(name) != stamp}
    return Returned(value, os.environ[NODE_ENV], files)


def _path(roots: Roots, name: str) -> Path:
    root_name, _, rel = name.partition("/")
    return Path(getattr(roots, root_name)) / rel


def _stamp(path: str) -> float:
    return max((p.stat().st_mtime_ns for p in Path(path).rglob("*")), default=Path(path).stat().st_mtime_ns)


def _finished(roots: Roots) -> dict[str, float]:
    """The finished store entries under `roots` that a job may write (RETURNED), by store path, with
    the time of their newest file."""
    found = {}
    for root_name, tops in RETURNED.items():
        root = Path(getattr(roots, root_name))
        for top, depth in tops.items():
            for path in (root / top).glob("/".join(["*"] * depth)) if (root / top).is_dir() else ():
                if not path.name.startswith("."):  # temporaries and locks
                    found[f"{root_name}/{path.relative_to(root)}"] = _stamp(str(path))
    return found


def receive(returned: Returned, driver: Roots) -> None:
    """Write what a node sent back into the driver's store: every folder whole and atomically, a
    run's folder replacing a partial one (its manifest makes it finished), then the runs' index."""
    runs = False
    for name, data in sorted(returned.files.items()):
        target = _path(driver, name)
        if name.startswith("results/") and not (target / "manifest.json").exists():
            import shutil

            shutil.rmtree(target, ignore_errors=True)  # left by a run that died half-written
            runs = True
        target.parent.mkdir(parents=True, exist_ok=True)
        unpack(data, target)
    if runs:
        from protocol.store import ResultStore

        ResultStore(Path(driver.results)).rebuild_index()


def resources(kind: str, profile: str | None, plan_resources: dict | None = None, gpus_at_least: int = 0) -> dict:
    """What a job of `kind` (inputs: a data set's feature sets and adapters; run: one grid point)
    asks of a Ray cluster: the profile's `resources:` block, a plan's own block over it, as Ray
    task options (num_gpus, num_cpus, memory in bytes)."""
    from protocol.config import load_profile

    asked = {**(load_profile(profile).get("resources") or {}).get(kind, {}),
             **((plan_resources or {}).get(kind) or {})}
    unknown = set(asked) - {"gpus", "cpus", "memory_gb"}
    if unknown:
        raise HarnessError(f"resources.{kind} takes gpus, cpus and memory_gb, not {sorted(unknown)}; fix the "
                           "profile's or the plan's `resources:` block.")
    options = {"num_gpus": max(float(asked.get("gpus", 0)), gpus_at_least), "num_cpus": float(asked.get("cpus", 1))}
    if asked.get("memory_gb"):
        options["memory"] = int(float(asked["memory_gb"]) * 2**30)
    return options
