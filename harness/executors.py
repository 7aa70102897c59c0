"""Executors run a list of run specs: `local` (in this process, or N worker processes with one GPU
each when GPUs exist) and `ray` (tasks on a Ray instance; the `distributed` extra).

Every run uses `train.threads` torch threads, or when that is 0, cores // workers: N workers
divide the cores rather than each taking all of them, and the same specs, seeds and `--workers`
give the same numbers on either executor.
"""
from __future__ import annotations

import dataclasses
import os

from harness.config import artifacts_dir
from harness.errors import HarnessError

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


def run_job(job: Job) -> str:
    """Worker entry point: one run in this process; returns its run key."""
    os.environ["HARNESS_ARTIFACTS"] = job.artifacts
    from extractors.featureset import FeatureSet
    from harness.data.dataset import Dataset
    from harness.runner import RunSpec, execute
    from harness.store import ResultStore
    from harness.threads import torch_threads

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


def make_jobs(specs, store, dataset, features, workers: int) -> list[Job]:
    source = str(features.path) if features is not None and features.path else features
    return [Job(dataclasses.asdict(s), str(dataset.path), source, str(store.root), str(artifacts_dir()),
                job_threads(s.train.get("threads", 0), workers))
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


def run_ray(jobs: list, workers: int, on_done=None, task=None) -> list:
    task = task or run_job
    try:
        import ray
    except ImportError:
        raise HarnessError("the ray executor needs Ray; install the extra: pip install -e '.[distributed]'.") from None
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    remote = ray.remote(num_cpus=max(1, cpus // workers), num_gpus=1 if gpu_count() else 0)(task)
    refs = {remote.remote(job): i for i, job in enumerate(jobs)}

    def completed():
        pending = list(refs)
        while pending:
            (done,), pending = ray.wait(pending, num_returns=1)
            yield refs[done], lambda done=done: ray.get(done)

    return _report(completed(), on_done)


def run_jobs(jobs: list, executor: str = "local", workers: int = 1, on_done=None, task=None) -> list:
    """Run `task` (a picklable top-level function; default: one run) on each job; `on_done(index,
    result, error)` hears of each as it ends (and then a failed job does not stop the others)."""
    if executor not in EXECUTORS:
        raise HarnessError(f"unknown executor '{executor}'; use one of {', '.join(EXECUTORS)}.")
    if workers < 1:
        raise HarnessError(f"--workers must be at least 1, not {workers}.")
    if not jobs:
        return []
    return (run_local if executor == "local" else run_ray)(jobs, workers, on_done, task)
