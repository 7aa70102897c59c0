"""Executors run a list of run specs: `local` (in this process, or N worker processes with one GPU
each when GPUs exist) and `ray` (tasks on a Ray cluster, or a local Ray instance without an
address; the `distributed` extra). On Ray each job asks for what its profile says a job of its
kind needs (harness.cluster.resources), whatever the driver's own hardware, and runs on a node
of its own disk (harness.cluster: inputs fetched, outputs sent back).

Every run uses `train.threads` torch threads, or when that is 0, cores // workers: N workers
divide the cores rather than each taking all of them, and the same specs, seeds and `--workers`
give the same numbers on either executor.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from protocol.config import artifacts_dir
from protocol.errors import HarnessError

EXECUTORS = ("local", "ray")


@dataclasses.dataclass
class Job:
    """What a worker needs: the spec as a dict, where the data set is, and the feature set (its
    directory when it was saved, else the in-memory object)."""

    spec: dict
    dataset_path: str
    features: object  # str path | FeatureSet | None
    results: str  # the result store's root, so a worker writes where the caller reads
    artifacts: str  # checkpoints and RAT teachers
    threads: int
    run_key: str = ""  # names the checkpoint a cluster node resumes from
    resources: dict = dataclasses.field(default_factory=dict)  # Ray task options (harness.cluster.resources)

    @property
    def label(self) -> str:
        return f"run {self.run_key} ({self.spec['model']} / {self.spec['extractor']})"

    def on_node(self, node) -> "Job":
        """This job on a cluster node without the driver's disk (harness.cluster.NodeStore): its data
        set, feature set, the data set's RAT teachers and its checkpoint fetched to the node."""
        dataset = Path(self.dataset_path).name.rsplit("-", 1)[0]  # datasets/<name>-<key>
        for teacher in node.glob(f"{self.artifacts}/rat", f"teacher-{dataset}-*.npy"):
            node.fetch(teacher)
        if self.run_key:
            node.fetch(f"{self.artifacts}/checkpoints/{self.run_key}.pt")
        return dataclasses.replace(
            self, dataset_path=node.fetch(self.dataset_path), results=node.place(self.results),
            features=node.fetch(self.features) if isinstance(self.features, str) else self.features,
            artifacts=node.place(self.artifacts))


@dataclasses.dataclass
class TeacherJob:
    """RAT's ID-SASRec teacher of one data set and settings, trained once before the runs that
    share it (on a cluster, where each node would otherwise train its own copy)."""

    params: dict  # a run's resolved model settings (the teacher's are taken from them)
    dataset_path: str
    artifacts: str
    resources: dict = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"RAT teacher of {Path(self.dataset_path).name} ({self.params['teacher_epochs']} epochs)"

    def on_node(self, node) -> "TeacherJob":
        return dataclasses.replace(self, dataset_path=node.fetch(self.dataset_path), artifacts=node.place(self.artifacts))


def train_teacher(job: TeacherJob) -> str:
    """Worker entry point: the teacher trained into the store (kept there when it is already)."""
    os.environ["HARNESS_ARTIFACTS"] = job.artifacts
    from protocol.data.dataset import Dataset
    from recommenders.rat import teacher_embeddings

    teacher_embeddings(Dataset(job.dataset_path), job.params)
    return job.label


def teacher_jobs(jobs: list[Job]) -> list[TeacherJob]:
    """One job per distinct teacher the runs `jobs` would train (none for models without one)."""
    from recommenders import MODELS
    from recommenders.rat import TEACHER_SETTINGS

    teachers = {}
    for job in jobs:
        params = job.spec["params"]
        if MODELS.get(job.spec["model"]).trains_teacher(params, job.features is not None):
            key = (job.dataset_path, json.dumps([params[k] for k in (*TEACHER_SETTINGS, "teacher_epochs")]))
            teachers.setdefault(key, TeacherJob(params, job.dataset_path, job.artifacts, job.resources))
    return list(teachers.values())


def run_job(job: Job) -> str:
    """Worker entry point: one run in this process; returns its run key."""
    os.environ["HARNESS_ARTIFACTS"] = job.artifacts
    from harness.runner import RunSpec, execute
    from protocol.data.dataset import Dataset
    from protocol.featureset import FeatureSet
    from protocol.store import ResultStore
    from protocol.threads import torch_threads

    dataset = Dataset(job.dataset_path)
    features = FeatureSet.load(job.features, dataset) if isinstance(job.features, str) else job.features
    with torch_threads(job.threads):  # run in-process, the caller keeps its own setting
        return execute(RunSpec(**job.spec), ResultStore(job.results), dataset, features)["run_key"]


def job_threads(threads: int, workers: int, cores: int | None = None) -> int:
    """Torch threads per worker: `threads` (train.threads) when set, else an equal share of the
    cores; refused when the workers together would ask for more threads than there are cores."""
    cores = cores or os.cpu_count() or 1
    if threads * workers > cores:
        raise HarnessError(f"train.threads={threads} with {workers} workers asks for {threads * workers} "
                           f"threads on {cores} cores; lower one (train.threads=0 divides the cores).")
    return threads or max(1, cores // workers)


def make_jobs(specs, store, dataset, features, workers: int, plan_resources: dict | None = None) -> list[Job]:
    """One job per spec; `plan_resources`: a plan's `resources:` block over the profile's."""
    from harness.cluster import resources
    from harness.runner import feature_key_of

    source = str(features.path) if features is not None and features.path else features
    return [Job(dataclasses.asdict(s), str(dataset.path), source, str(store.root), str(artifacts_dir()),
                job_threads(s.train.get("threads", 0), workers), s.key(dataset.content_hash, feature_key_of(features)),
                resources("run", s.profile, plan_resources))
            for s in specs]


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _pin_gpu(queue) -> None:
    """Process-pool initializer: this worker sees one GPU (before torch initialises CUDA)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


def _report(outcomes, on_done) -> list[str]:
    """Feed (index, outcome) pairs, in completion order, to `on_done(index, run_key, error)`; without
    a callback the first error propagates. Returns the run keys in job order (None where failed)."""
    keys: dict[int, str | None] = {}
    for index, outcome in outcomes:
        try:
            keys[index] = outcome()
        except Exception as err:  # the callback decides; a grid without one stops here
            if on_done is None:
                raise
            keys[index] = None
            on_done(index, None, err)
            continue
        if on_done is not None:
            on_done(index, keys[index], None)
    return [keys[i] for i in sorted(keys)]


def run_local(jobs: list, workers: int, on_done=None, task=None) -> list:
    task = task or run_job
    if workers == 1:
        return _report(((i, lambda job=job: task(job)) for i, job in enumerate(jobs)), on_done)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = mp.get_context("spawn")  # a clean interpreter per worker: no forked torch/CUDA state
    gpus = gpu_count()
    if gpus and workers > gpus:
        raise HarnessError(f"--workers {workers} with {gpus} GPUs; use at most {gpus} (one GPU each).")
    initializer, initargs = None, ()
    if gpus:
        queue = context.Manager().Queue()
        for gpu in range(workers):
            queue.put(gpu)
        initializer, initargs = _pin_gpu, (queue,)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        futures = {pool.submit(task, job): i for i, job in enumerate(jobs)}
        return _report(((futures[f], f.result) for f in as_completed(futures)), on_done)


def run_ray(jobs: list, workers: int, on_done=None, task=None, address: str | None = None) -> list:
    """Each job a Ray task with its own `resources` (else an equal share of the CPUs), run through
    harness.cluster on whichever node has them; a task lost with its node runs again elsewhere."""
    task = task or run_job
    try:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError:
        raise HarnessError("the ray executor needs Ray; install the extra: pip install -e '.[distributed]'.") from None
    from harness.cluster import RETRIES, FileServer, Roots, Shipped, connect, receive, run_shipped

    connect(address)
    driver = Roots.driver()
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    server = ray.remote(FileServer).options(num_cpus=0, scheduling_strategy=here).remote()
    share = {"num_cpus": max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)}
    remote = ray.remote(run_shipped)
    refs = {remote.options(**(getattr(job, "resources", None) or share), max_retries=RETRIES,
                           retry_exceptions=False).remote(Shipped(task, job, driver, server)): i
            for i, job in enumerate(jobs)}

    def result(done):
        returned = ray.get(done)
        receive(returned, driver)
        job = jobs[refs[done]]
        print(f"[{returned.node}] ran {getattr(job, 'label', type(job).__name__)}")  # the table's log
        return returned.value

    def completed():
        pending = list(refs)
        while pending:
            (done,), pending = ray.wait(pending, num_returns=1)
            yield refs[done], lambda done=done: result(done)

    return _report(completed(), on_done)


def check_executor(executor: str, workers: int) -> None:
    """For callers from Python (the CLI's argparse refuses these first): before any work starts."""
    if executor not in EXECUTORS:
        raise HarnessError(f"unknown executor '{executor}'; use one of {', '.join(EXECUTORS)}.")
    if workers < 1:
        raise HarnessError(f"--workers must be at least 1, not {workers}.")


def run_jobs(jobs: list, executor: str = "local", workers: int = 1, on_done=None, task=None,
             address: str | None = None) -> list:
    """Run `task` (a picklable top-level function; default: one run) on each job; `on_done(index,
    result, error)` hears of each as it ends (and then a failed job does not stop the others).
    `address`: the Ray cluster to join (else $RAY_ADDRESS, else a local Ray)."""
    check_executor(executor, workers)
    if not jobs:
        return []
    if executor == "ray":
        return run_ray(jobs, workers, on_done, task, address)
    return run_local(jobs, workers, on_done, task)
