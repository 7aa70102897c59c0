"""Nothing silently wrong (issue 14, sections 2-3; issue 17's NaN winner and resumed wall time).

Each bad setting, override or argument ends in one stderr line naming it and what it accepts,
exit 2, no traceback, nothing stored and no checkpoint left; a non-finite training loss stops the
run the same way. Property tests draw every setting of every model, the trainer, every
extractor and the data set across and beyond the ranges written out below (the expected
ranges, written here by hand: a range changed in the code must be changed here too).
"""
from __future__ import annotations

import math
import os
import re
import types
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from protocol.errors import HarnessError


# -- what "refused" means --------------------------------------------------------------------
def stored() -> dict[str, list[str]]:
    """What a run, grid, extraction or preparation leaves behind."""
    results, artifacts = Path(os.environ["HARNESS_RESULTS"]), Path(os.environ["HARNESS_ARTIFACTS"])
    return {name: sorted(p.name for p in folder.glob("*")) for name, folder in
            (("runs", results / "runs"), ("checkpoints", artifacts / "checkpoints"),
             ("datasets", artifacts / "datasets"), ("features", artifacts / "features"))}


def refused(capsys, argv: list[str], *fragments: str) -> str:
    """`argv` exits 2 with one stderr line "error: ..." holding every fragment, and stores nothing."""
    before = stored()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert stored() == before
    return lines[0]


# -- section 2: settings that used to train into garbage ---------------------------------------
RUN = ["run", "--dataset", "toys"]
SILENT = [
    (RUN + ["-m", "sasrec", "hidden=0"], ("sasrec", "hidden=0", "at least 1")),
    (RUN + ["-m", "vbpr", "-e", "base", "embedding_size=0"], ("vbpr", "embedding_size=0", "at least 1")),
    (RUN + ["-m", "slmrec", "-e", "base", "embedding_size=0"], ("slmrec", "embedding_size=0", "at least 1")),
    (RUN + ["-m", "vbpr", "-e", "base", "batch_size=-5"], ("batch_size=-5", "at least 1")),
    (RUN + ["-m", "vbpr", "-e", "base", "reg_weight=nan"], ("reg_weight=nan", "finite", "at least 0")),
    (RUN + ["-m", "vbpr", "-e", "base", "reg_weight=.inf"], ("reg_weight=inf", "finite")),
    (RUN + ["-m", "bert4rec", "mask_prob=1.5"], ("mask_prob=1.5", "(0, 1]")),
    (RUN + ["-m", "bert4rec", "mask_prob=0"], ("mask_prob=0.0", "(0, 1]")),
    (RUN + ["-m", "sasrec", "n_blocks=0"], ("n_blocks=0", "at least 1")),
    (RUN + ["-m", "sasrec", "-e", "clip", "teacher_epochs=-1"], ("teacher_epochs=-1", "at least 1")),
    (RUN + ["-m", "slmrec", "-e", "base", "temp=0"], ("temp=0.0", "greater than 0")),
    (RUN + ["-m", "vbpr", "-e", "sda", "extractor.experts=0"], ("extractor sda", "experts=0", "at least 1")),
    (RUN + ["-m", "vbpr", "-e", "sda", "extractor.experts=3"], ("experts=3 with rank=8", "experts must divide rank")),
    (["extract", "-e", "base", "-d", "toys", "pixel_dim=0"], ("extractor base", "pixel_dim=0", "at least 1")),
    (["extract", "-e", "base", "-d", "toys", "batch_size=0"], ("batch_size=0", "at least 1")),
    (["extract", "-e", "base", "-d", "toys", "cpu_threads=-1"], ("cpu_threads=-1", "at least 0")),
    (["extract", "-e", "qwenvl", "-d", "toys", "min_pixels=70000"], ("min_pixels=70000 with max_pixels=65536",)),
    (["adapt", "-d", "toys", "tau=0"], ("tau=0.0", "greater than 0")),
    (["data", "prepare", "-d", "toys", "negative_seed=-1"], ("negative_seed=-1", "at least 0")),
    (RUN + ["-m", "sasrec", "train.seed=-1"], ("the trainer", "seed=-1", "at least 0")),
]

# -- section 3: what used to end in a traceback ------------------------------------------------
TRACEBACKS = [
    (RUN + ["-m", "sasrec", "reg_weight=[0.1"], ("override 'reg_weight=[0.1'", "not valid YAML")),
    (RUN + ["-m", "sasrec", "x={a"], ("override 'x={a'", "not valid YAML")),
    (RUN + ["-m", "sasrec", "x=a: b: c"], ("override 'x=a: b: c'", "not valid YAML")),
    (RUN + ["-m", "sasrec", "x=@x"], ("override 'x=@x'", "not valid YAML")),
    (RUN + ["-m", "sasrec", "@x"], ("override '@x' is not key=value",)),
    (RUN + ["-m", "sasrec", "batch_size=0"], ("batch_size=0", "at least 1")),
    (RUN + ["-m", "sasrec", "lr=-1"], ("lr=-1.0", "greater than 0")),
    (RUN + ["-m", "sasrec", "lr=nan"], ("lr=nan", "finite")),
    (RUN + ["-m", "sasrec", "weight_decay=-1"], ("weight_decay=-1.0", "at least 0")),
    (RUN + ["-m", "sasrec", "dropout=1.5"], ("dropout=1.5", "[0, 1)")),
    (RUN + ["-m", "sasrec", "dropout=1"], ("dropout=1.0", "[0, 1)")),
    (RUN + ["-m", "sasrec", "hidden=64", "n_heads=3"], ("n_heads=3 with hidden=64", "n_heads must divide hidden")),
    (RUN + ["-m", "bert4rec", "hidden=64", "n_heads=0"], ("n_heads=0", "at least 1")),
    (RUN + ["-m", "sasrec", "max_len=0"], ("max_len=0", "at least 1")),
    (RUN + ["-m", "sasrec", "max_len=-1"], ("max_len=-1", "at least 1")),
    (["grid", "-m", "vbpr", "-d", "toys", "grid.reg_weight=[]"], ("grid.reg_weight=[]", "at least one")),
    (["grid", "-m", "vbpr", "-d", "toys", "grid.reg_weight=[0.1,0.1]"], ("lists 0.1 more than once",)),
    (["grid", "-m", "vbpr", "-d", "toys", "grid.reg_weight=[0.1,-1]"], ("reg_weight=-1.0", "at least 0")),
]


@pytest.mark.parametrize("argv, fragments", SILENT + TRACEBACKS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_setting_is_one_line_and_nothing_is_stored(capsys, argv, fragments):
    refused(capsys, argv, *fragments)


@pytest.mark.parametrize("argv, fragment", [
    (["table", "table1", "--workers", "0"], "argument --workers: '0' is not accepted; give a whole number of at least 1"),
    (["table", "table1", "--workers", "-1"], "argument --workers: '-1' is not accepted"),
    (["table", "table1", "--executor", "nosuch"], "argument --executor: invalid choice: 'nosuch'"),
    (["grid", "-m", "vbpr", "--workers", "0"], "argument --workers: '0' is not accepted"),
])
def test_table_and_grid_arguments_are_refused_before_any_work(capsys, argv, fragment):
    """argparse refuses them while reading the command line (its usage line, then one error line)."""
    before = stored()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err.strip().splitlines()[-1] and "Traceback" not in err
    assert stored() == before  # no data set prepared (table1 prepares three first)


@pytest.mark.parametrize("command", ["table", "figure"])
def test_overrides_are_not_named_as_required(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [  # one line, naming `name` only
        f"error: the following arguments are required: name; see `python -m harness {command} --help`."]
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "[key=value ...]" in capsys.readouterr().out  # the usage line shows them optional


# -- a non-finite loss ---------------------------------------------------------------------------
def runs_listed(capsys, *filters: str) -> int:
    assert main(["results", *filters]) == 0
    return int(re.search(r"runs under .*: (\d+)", capsys.readouterr().out).group(1))


def test_must_show_vbpr_with_lr_inf_is_one_line_and_no_run(capsys):
    """The issue's must-show, literally. lr=inf no longer reaches training (numbers must be
    finite, lr > 0), so its one line names lr and the non-finite loss it would give, before
    anything runs; a finite lr large enough to make the loss non-finite is the next test."""
    before = runs_listed(capsys, "--model", "vbpr", "--dataset", "toys")
    line = refused(capsys, ["run", "--model", "vbpr", "--extractor", "base", "--dataset", "toys", "lr=inf",
                            "train.max_epochs=1"], "lr=inf", "finite")
    assert "is not finite, so the training loss would not be either" in line
    assert runs_listed(capsys, "--model", "vbpr", "--dataset", "toys") == before


def test_a_loss_that_blows_up_stops_the_run_with_one_line(capsys, toys):
    before = runs_listed(capsys, "--model", "sasrec")
    line = refused(capsys, ["run", "-m", "sasrec", "-d", "toys", "lr=1e30", "hidden=8", "max_len=5",
                            "train.max_epochs=2", "train.progress=false"], "lr=1e+30", "not finite")
    assert re.search(r"epoch 1: the training loss is -?(nan|inf) \(not finite\)", line), line
    assert runs_listed(capsys, "--model", "sasrec") == before


def test_a_non_finite_loss_leaves_no_checkpoint_to_resume(capsys, toys, monkeypatch):
    """Epoch 1 is checkpointed, epoch 2's loss is NaN: the run stops and its checkpoint goes too."""
    from recommenders.sasrec import SASRec
    from recommenders.trainer import Trainer

    saved, epoch = [], {"now": 0}
    real_loss, real_save = SASRec.calculate_loss, Trainer._save
    monkeypatch.setattr(SASRec, "on_epoch_start", lambda self, e: epoch.update(now=e))
    monkeypatch.setattr(SASRec, "calculate_loss",
                        lambda self, batch: real_loss(self, batch) * (math.nan if epoch["now"] == 2 else 1.0))
    monkeypatch.setattr(Trainer, "_save", lambda self, state: (saved.append(self.checkpoint), real_save(self, state)))
    refused(capsys, ["run", "-m", "sasrec", "-d", "toys", "hidden=8", "max_len=5", "train.max_epochs=3",
                     "train.progress=false"], "epoch 2: the training loss is nan", "likely cause: lr=0.001")
    assert len(saved) == 1 and not saved[0].exists()  # written after epoch 1, removed at epoch 2


# -- issue 17: wall seconds across a resume ------------------------------------------------------
class Killed(Exception):
    """A kill -9 between epochs, simulated."""


def test_a_resumed_run_reports_the_time_of_every_process(toys, monkeypatch, tmp_path):
    """A fake clock: each training epoch takes 10 s, each evaluation pass 1 s, nothing else takes
    time. Process 1 finishes epochs 1-3 (checkpoint after each), is killed 10 s into epoch 4;
    process 2 resumes at epoch 4, trains 4 and 5, then evaluates once. The run took
    3 x (10 + 1) recorded before the kill + 2 x (10 + 1) + 1 after = 56 s (the 10 s of the
    killed epoch were never checkpointed, so they are not counted)."""
    import harness.runner as runner
    import recommenders.trainer as trainer_module
    from harness.runner import RunSpec, execute
    from protocol.store import ResultStore
    from recommenders.trainer import Trainer

    clock = [0.0]
    fake_time = types.SimpleNamespace(perf_counter=lambda: clock[0])
    monkeypatch.setattr(trainer_module, "time", fake_time)
    monkeypatch.setattr(runner, "time", fake_time)
    real_epoch, real_evaluate = Trainer._train_epoch, Trainer.evaluate_many
    kill_at = [4]

    def timed_epoch(self, optimizer, rng, epoch):
        clock[0] += 10.0
        if epoch == kill_at[0]:
            raise Killed
        return real_epoch(self, optimizer, rng, epoch)

    def timed_evaluation(self, wanted):
        clock[0] += 1.0
        return real_evaluate(self, wanted)

    monkeypatch.setattr(Trainer, "_train_epoch", timed_epoch)
    monkeypatch.setattr(Trainer, "evaluate_many", timed_evaluation)
    spec = RunSpec.resolve("sasrec", "toys", "base", "mini", {
        "hidden": 8, "max_len": 5, "train.max_epochs": 5, "train.patience": 10, "train.progress": False,
        "train.full_ranking": False})
    store = ResultStore(tmp_path)
    with pytest.raises(Killed):
        execute(spec, store, toys)
    kill_at[0] = None
    ident = execute(spec, store, toys)["manifest"]["identity"]
    history = store.manifest(ident["run_key"])["history"]
    assert ident["resumes"] == 1 and [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert sum(h["seconds"] for h in history) == pytest.approx(50.0)
    assert ident["wall_seconds"] == pytest.approx(56.0, rel=0.02)


# -- issue 17: NaN never wins a grid -------------------------------------------------------------
def grid_of(values: list[float], monkeypatch):
    import harness.grid as grid
    from harness.runner import RunSpec

    specs = [RunSpec.resolve("vbpr", "toys", "base", "mini", {"reg_weight": w}) for w in (0.1, 0.01, 0.001, 0.0001)][:len(values)]
    keys = [f"run{i}" for i in range(len(values))]
    monkeypatch.setattr(grid, "valid_value", lambda store, key, metric: values[keys.index(key)])
    monkeypatch.setattr(grid, "summary_row", lambda store, spec, key, axes, n: {"run_key": key})
    monkeypatch.setattr(grid, "write_summary", lambda store, row: Path("summary.csv"))
    return grid.Grid(specs, keys, {"reg_weight": [s.params["reg_weight"] for s in specs]},
                     types.SimpleNamespace(content_hash="h"), None)


@pytest.mark.parametrize("values, winner", [
    ([0.2, math.nan, 0.5, 0.5], "run2"),  # argmax picked run1 (a NaN); the first of the equal 0.5s wins
    ([math.nan, 0.1], "run1"),  # argmax picked run0
    ([0.3, 0.1, math.nan], "run0"),
])
def test_a_nan_validation_value_never_wins_the_grid(monkeypatch, values, winner):
    from harness.grid import pick

    assert pick(grid_of(values, monkeypatch), store=None)["winner"] == winner


def test_a_grid_of_nan_points_has_no_winner(monkeypatch):
    from harness.grid import pick

    with pytest.raises(HarnessError, match=r"every one of the grid's 2 points has a NaN validation ndcg@10") as err:
        pick(grid_of([math.nan, math.nan], monkeypatch), store=None)
    assert "\n" not in str(err.value)


# -- property tests: every setting across and beyond its range ---------------------------------
def ints(ok):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and ok(v)


def floats(ok):
    """A number setting: ints are taken as floats, "1e-3"-style strings are read as numbers."""
    def accepts(v):
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                return False
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and ok(v)

    return accepts


def one_of(*choices):
    return lambda v: isinstance(v, str) and v in choices


def any_of(kind):
    return lambda v: isinstance(v, kind) and (kind is bool or not isinstance(v, bool))


SIZE, NON_NEGATIVE_INT = ints(lambda v: v >= 1), ints(lambda v: v >= 0)
POSITIVE, NON_NEGATIVE = floats(lambda v: v > 0), floats(lambda v: v >= 0)
DROPOUT = floats(lambda v: 0 <= v < 1)
TEXT, FLAG = any_of(str), any_of(bool)


def device(v):
    return v in ("auto", "cpu") or (isinstance(v, str) and bool(re.fullmatch(r"cuda(:\d+)?", v))
                                    and torch.cuda.is_available())


COMMON = {"lr": POSITIVE, "weight_decay": NON_NEGATIVE, "batch_size": SIZE}
SEQUENTIAL = COMMON | {"hidden": SIZE, "n_blocks": SIZE, "n_heads": SIZE, "dropout": DROPOUT, "max_len": SIZE,
                       "alpha": NON_NEGATIVE, "teacher_epochs": SIZE}
MODELS = {
    "pop": COMMON,
    "vbpr": COMMON | {"embedding_size": SIZE, "reg_weight": NON_NEGATIVE},
    "slmrec": COMMON | {"embedding_size": SIZE, "n_layers": SIZE, "temp": POSITIVE, "ssl_temp": POSITIVE,
                        "ssl_alpha": NON_NEGATIVE},
    "sasrec": SEQUENTIAL | {"causal": FLAG},
    "bert4rec": SEQUENTIAL | {"mask_prob": floats(lambda v: 0 < v <= 1)},
}
RUNNING = {"dtype": one_of("auto", "bf16", "fp16", "fp32"), "device": device, "batch_size": SIZE,
           "shard_items": SIZE, "cpu_threads": NON_NEGATIVE_INT}
QWENVL = RUNNING | {"model": TEXT, "revision": TEXT, "domain": TEXT, "text_prefix": TEXT, "image_prompt": TEXT,
                    "min_pixels": SIZE, "max_pixels": SIZE, "pca_dim": SIZE}
SDA = QWENVL | {"adapter": one_of("moda", "lora"), "experts": SIZE, "rank": SIZE, "alpha": ints(lambda v: v > 0),
                "dropout": DROPOUT, "gate_dim": SIZE, "loss": one_of("cmsa", "infonce"), "tau": POSITIVE,
                "cmsa_dim": SIZE, "steps": SIZE, "batch_items": ints(lambda v: v >= 2), "lr": POSITIVE,
                "clip": POSITIVE, "seed": NON_NEGATIVE_INT, "adapt_processes": SIZE,
                "gradient_checkpointing": FLAG, "checkpoint_every": SIZE}
EXTRACTORS = {
    "base": {"text_model": TEXT, "image_features": TEXT, "pixel_dim": SIZE, "batch_size": SIZE, "device": device,
             "cpu_threads": NON_NEGATIVE_INT},
    "clip": RUNNING | {"model": TEXT, "revision": TEXT},
    "qwenvl": QWENVL, "sda": SDA, "sda-lora": SDA, "sda-infonce": SDA,
}
TRAINER = {"max_epochs": NON_NEGATIVE_INT, "patience": SIZE, "eval_batch_size": SIZE, "device": device,
           "seed": NON_NEGATIVE_INT, "full_ranking": FLAG, "progress": FLAG, "threads": NON_NEGATIVE_INT,
           "valid_metric": lambda v: isinstance(v, str) and bool(re.fullmatch(r"(hit|ndcg)@[1-9]\d*", v))}
DATASET = {"domain": TEXT, "source": one_of("sequences", "amazon", "amazon2023"), "path": TEXT, "reviews": TEXT, "ratings": TEXT,
           "meta": TEXT, "image_features": TEXT, "recipe": one_of("llmemb", "kcore", "none"),
           "min_count": SIZE, "min_user_len": ints(lambda v: v >= 3), "n_negatives": SIZE,
           "negative_seed": NON_NEGATIVE_INT, "tail_threshold": SIZE, "images": one_of("none", "render"),
           "extractors": lambda v: isinstance(v, dict) and all(
               k in ("base", "clip", "qwenvl", "sda", "sda-lora", "sda-infonce") and isinstance(x, dict)
               for k, x in v.items())}


def fits_together(values: dict) -> bool:
    """The rules across settings, given every setting's value (defaults filled in)."""
    if "n_heads" in values and "hidden" in values and values["hidden"] % values["n_heads"]:
        return False
    if "min_pixels" in values and values["min_pixels"] > values["max_pixels"]:
        return False
    if "experts" in values and values["adapter"] == "moda" and values["rank"] % values["experts"]:
        return False
    if "batch_items" in values:
        share, rest = divmod(values["batch_items"], values["adapt_processes"])
        if rest or share < 2:
            return False
    return True


def values_of(default) -> st.SearchStrategy:
    """Values across and beyond a setting's range: edges, far outside, wrong types, NaN and inf."""
    if isinstance(default, bool):
        return st.one_of(st.booleans(), st.integers(0, 1), st.just("true"))
    if isinstance(default, int):
        return st.one_of(st.integers(-3, 12), st.integers(-10**6, 10**6), st.sampled_from([default, 64, 128]),
                         st.floats(allow_nan=True, allow_infinity=True), st.just(True), st.just("8"))
    if isinstance(default, float):
        return st.one_of(st.floats(-2, 2), st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from([0.0, 1.0, -0.0, 1e-12, default, math.inf, -math.inf, math.nan]),
                         st.integers(-3, 3), st.sampled_from(["1e-3", "nan", "inf", "x"]), st.just(False))
    if isinstance(default, dict):  # a data set's extractor blocks
        return st.sampled_from([{}, {"sda": {"steps": 2}}, {"nosuch": {}}, {"sda": 3}, {"clip": {}, "x": {}}, "x", 1])
    if isinstance(default, list):
        return st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 60)), max_size=3)
    choices = ["auto", "cpu", "cuda", "cuda:1", "gpu", "moda", "lora", "cmsa", "infonce", "fp32", "bf16", "x",
               "", "ndcg@10", "hit@5", "ndcg@0", "auc", "sequences", "amazon", "amazon2023", "kcore", "none", "render", default]
    return st.one_of(st.sampled_from(choices), st.integers(0, 3), st.none())


def draws(defaults: dict, keys) -> st.SearchStrategy:
    """One to three settings at once: enough to meet the rules across settings, few enough that
    an out-of-range value is often the only one (so an accepted one would show)."""
    return st.lists(st.sampled_from(sorted(keys)), min_size=1, max_size=3, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({k: values_of(defaults[k]) for k in chosen}))


def merged(defaults: dict, values: dict) -> dict:
    return defaults | {k: float(v) if isinstance(defaults[k], float) else v for k, v in values.items()}


def check_resolution(resolve, defaults: dict, expected: dict, values: dict) -> None:
    """Accepted exactly when every value is in its expected range and they fit together;
    otherwise one HarnessError line naming a given setting; never any other exception."""
    in_range = all(expected[k](v) for k, v in values.items())
    try:
        resolve(values)
    except HarnessError as err:
        message = str(err)
        assert "\n" not in message and any(f"{k}=" in message for k in values), message
        assert not in_range or not fits_together(merged(defaults, values)), (values, message)
        return
    assert in_range, f"accepted out of range: {values}"
    assert fits_together(merged(defaults, values)), f"accepted settings that do not fit together: {values}"


def owners() -> dict[str, tuple]:
    """Every owner of settings: (resolve, defaults, expected ranges)."""
    import dataclasses

    from extractors.registry import EXTRACTORS as EXTRACTOR_REGISTRY
    from protocol.config import build
    from protocol.data.spec import DatasetSpec
    from recommenders import MODELS as MODEL_REGISTRY
    from recommenders.trainer import TrainConfig

    out = {}
    for name, expected in MODELS.items():
        cls = MODEL_REGISTRY.get(name)
        out[f"model {name}"] = (cls.resolve_params, cls.resolve_params({}), expected)
    for name in ("mmrec:VBPR", "recbole:SASRec"):
        # lr, weight_decay, batch_size, max_len and MMRec's schedule are the harness's; the peers'
        # own settings are checked for type, and numbers for finiteness (they declare no ranges)
        cls = MODEL_REGISTRY.get(name)
        defaults = cls.resolve_params({})
        schedule = lambda v: (isinstance(v, list) and len(v) == 2  # noqa: E731
                              and all(floats(lambda x: x > 0)(x) and not isinstance(x, str) for x in v))
        declared = COMMON | {"max_len": SIZE, "learning_rate_scheduler": schedule}
        expected = {k: declared.get(k) or (floats(lambda v: True) if isinstance(d, float) else any_of(type(d)))
                    for k, d in defaults.items()}
        out[f"model {name}"] = (cls.resolve_params, defaults, expected)
    for name, expected in EXTRACTORS.items():
        cls = EXTRACTOR_REGISTRY.get(name)
        out[f"extractor {name}"] = (lambda values, cls=cls: cls(**values), cls.defaults, expected)
    trainer = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    out["trainer"] = (lambda values: build(TrainConfig, values, "the trainer (train.*)"), trainer, TRAINER)
    dataset = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
               for f in dataclasses.fields(DatasetSpec) if f.name != "name"}
    out["data set"] = (lambda values: build(DatasetSpec, values | {"name": "x"}, "data set x"), dataset, DATASET)
    return out


OWNERS = ["model pop", "model vbpr", "model slmrec", "model sasrec", "model bert4rec", "model mmrec:VBPR",
          "model recbole:SASRec", "extractor base", "extractor clip", "extractor qwenvl", "extractor sda",
          "extractor sda-lora", "extractor sda-infonce", "trainer", "data set"]
EDGES = {int: [-1, 0, 1, 2, 3, 64], float: [-1.0, -1e-9, 0.0, 1e-9, 0.5, 1.0, 1.5, math.inf, -math.inf, math.nan]}


@pytest.fixture(scope="module")
def every_owner():
    return owners()


def test_the_ranges_here_cover_every_setting(every_owner):
    assert sorted(every_owner) == sorted(OWNERS)
    for owner, (_, defaults, expected) in every_owner.items():
        assert set(defaults) == set(expected), owner  # a new setting needs its range written here


@pytest.mark.parametrize("owner", OWNERS)
def test_every_default_is_in_its_own_range(every_owner, owner):
    """Defaults are not checked when resolved (only given values are): they must fit by themselves."""
    _, defaults, expected = every_owner[owner]
    assert all(expected[k](v) for k, v in defaults.items()) and fits_together(defaults)


@pytest.mark.parametrize("owner", OWNERS)
def test_every_number_setting_at_the_edges_of_its_range(every_owner, owner):
    """Each number setting alone, at and around the edges every range here has (0, 1, 2)."""
    resolve, defaults, expected = every_owner[owner]
    for key, default in defaults.items():
        if type(default) in EDGES:
            for value in EDGES[type(default)]:
                check_resolution(resolve, defaults, expected, {key: value})


PROPERTY = settings(max_examples=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("owner", OWNERS)
def test_every_setting_is_accepted_exactly_in_its_range(every_owner, owner):
    """Drawn values across and beyond the ranges, one to three settings at a time."""
    resolve, defaults, expected = every_owner[owner]

    @PROPERTY
    @given(draws(defaults, expected))
    def check(values):
        check_resolution(resolve, defaults, expected, values)

    check()


@pytest.mark.parametrize("owner, values, fits", [
    ("model sasrec", {"hidden": 64, "n_heads": 3}, False),
    ("model sasrec", {"hidden": 64, "n_heads": 4}, True),
    ("model bert4rec", {"hidden": 6, "n_heads": 4}, False),
    ("extractor qwenvl", {"min_pixels": 65537}, False),
    ("extractor qwenvl", {"min_pixels": 100, "max_pixels": 100}, True),
    ("extractor sda", {"experts": 3}, False),  # rank 8
    ("extractor sda", {"experts": 3, "rank": 6}, True),
    ("extractor sda-lora", {"experts": 3}, True),  # LoRA has no experts to split the rank
    ("extractor sda", {"batch_items": 6, "adapt_processes": 4}, False),
    ("extractor sda", {"batch_items": 4, "adapt_processes": 4}, False),  # one item each: nothing to contrast
    ("extractor sda", {"batch_items": 6, "adapt_processes": 3}, True),
])
def test_settings_that_do_not_fit_together_are_one_line(every_owner, owner, values, fits):
    resolve, defaults, expected = every_owner[owner]
    assert fits_together(merged(defaults, values)) == fits  # the rules written here
    check_resolution(resolve, defaults, expected, values)
