"""Config loading, overrides, validation errors, derived quantities and the paper presets."""

from __future__ import annotations

import pytest

from hrf.config import PRESETS, config_diff, derived_quantities, load_config, preset_names, preset_path, save_config
from hrf.errors import ConfigError

PAPER = PRESETS / "paper"

# Tables 4–5: (samples per iteration, lr, method kind)
TABLES = {
    ("aesthetic", "ddpo"): (100, 3e-7, "full"),
    ("aesthetic", "hrf"): (160, 3e-7, "windows"),
    ("aesthetic", "hrfd"): (150, 9e-6, "dynamic"),
    **{
        (t, m): (150, 9e-7, k)
        for t in ("compressibility", "incompressibility")
        for m, k in (("ddpo", "full"), ("hrf", "windows"), ("hrfd", "dynamic"))
    },
}


@pytest.mark.parametrize("task,method", sorted(TABLES))
def test_paper_presets_match_tables(task, method):
    cfg = load_config(PAPER / f"celebahq-{task}-{method}.toml")
    samples, lr, kind = TABLES[(task, method)]
    d = derived_quantities(cfg)
    assert d["trajectories_per_epoch"] == samples
    assert d["optimizer_updates_per_epoch"] == 1
    assert cfg.train.lr == lr and cfg.schedule.kind == kind
    assert cfg.sampling.num_steps == 40 and cfg.train.weight_decay == 1e-3 and cfg.train.grad_clip == 4.5
    assert cfg.train.clip_range == 1e-4
    if kind == "windows":
        assert cfg.schedule.iterations == [8, 8, 8] and d["epochs_in_windows"] == 24
        expected = [[3, 7], [18, 22], [28, 32]] if task == "aesthetic" else [[8, 12], [18, 24], [28, 36]]
        assert cfg.schedule.windows == expected
        # trained steps per trajectory: steps k..38 for a start k (step 39 → 40 is deterministic)
        lo, hi = expected[0]
        assert d["trained_steps_per_trajectory"][f"window [{lo},{hi}]"] == 39 - (lo + hi) / 2
    if kind == "dynamic":
        assert cfg.schedule.beta == 1.0 and cfg.train.branches == 25
    if kind == "full":
        assert d["trained_steps_per_trajectory"]["full (k=0)"] == 39


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config(
        PAPER / "celebahq-compressibility-hrf.toml",
        ["train.lr=1e-6", "schedule.windows=[[1,2],[3,4]]", "schedule.iterations=[1,1]", "reward.options.quality=80"],
    )
    assert cfg.train.lr == 1e-6 and cfg.schedule.windows == [[1, 2], [3, 4]] and cfg.reward.options == {"quality": 80}
    save_config(cfg, tmp_path / "c.toml")
    again = load_config(tmp_path / "c.toml")
    assert config_diff(cfg, again) == []
    assert config_diff(cfg, load_config(tmp_path / "c.toml", ["train.seed=3"])) == ["train.seed: 0 -> 3"]


BAD = [
    (["train.lrr=1"], "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
    (["train.references=ten"], "train.references must be int"),
    (["train.references=0"], "train.references must be > 0"),
    (["train.lr=-1e-3"], "train.lr must be > 0"),
    (["schedule.kind=windows"], "needs schedule.windows"),
    (["schedule.kind=windows", "schedule.windows=[[3,50]]", "schedule.iterations=[1]"], "outside 0..38"),
    (["schedule.kind=windows", "schedule.windows=[[7,3]]", "schedule.iterations=[1]"], "reversed"),
    (["schedule.kind=windows", "schedule.windows=[[3,7]]", "schedule.iterations=[1,2]"], "2 entries for 1 windows"),
    (["schedule.kind=dynamic", "schedule.candidates=[5]"], "≥ 2 ascending"),
    (["schedule.kind=bogus"], "schedule.kind must be"),
    (["train.branches=1", "train.advantage_norm=group"], "needs train.branches ≥ 2"),
    (["sampling.eta=0"], "eta"),
    (["train.timestep_fraction=1.5"], "timestep_fraction"),
    (["train.skip_last_steps=-1"], "skip_last_steps"),
    (["sampling.num_steps=4", "train.skip_last_steps=3"], "leaves no step to train"),
    (
        [
            "sampling.num_steps=10",
            "train.skip_last_steps=1",
            "schedule.kind=windows",
            "schedule.windows=[[7,8]]",
            "schedule.iterations=[1]",
        ],
        "outside 0..7",
    ),
    (["model.mixed_precision=fp8"], "mixed_precision"),
    (["train"], "must look like section.key=value"),
    (["train.references=3"], None),  # valid: 3 references
]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_configs_are_one_line_errors(overrides, message):
    base = ["train.advantage_norm=batch"] if "train.advantage_norm=group" not in overrides else []
    if message is None:
        load_config(None, base + overrides)
        return
    with pytest.raises(ConfigError) as exc:
        load_config(None, base + overrides)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[train\nlr=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_references_must_split_over_processes():
    cfg = load_config(None, ["train.advantage_norm=batch", "train.references=5"])
    with pytest.raises(ConfigError, match="divisible"):
        derived_quantities(cfg, world_size=2)


def test_every_field_has_a_comment():
    """The dataclasses are the documentation: each field line carries a '#' comment."""
    import inspect

    import hrf.config as module

    for cls in (
        module.ModelConfig,
        module.SamplingConfig,
        module.RewardConfig,
        module.ScheduleConfig,
        module.TrainConfig,
        module.OutputConfig,
    ):
        for line in inspect.getsource(cls).splitlines()[1:]:
            if ":" in line and "=" in line and not line.strip().startswith(("#", '"')):
                assert "#" in line, f"{cls.__name__}: {line.strip()}"


@pytest.mark.parametrize("preset", preset_names())
def test_every_shipped_preset_loads(preset):
    """A validation rule added later must not leave a shipped preset that no longer loads."""
    cfg = load_config(preset_path(preset))
    assert derived_quantities(cfg)["trajectories_per_epoch"] > 0


def test_the_old_tensorboard_key_still_loads_as_a_tracker(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text("[train]\nbranches = 2\n[output]\ntensorboard = true\n")
    with pytest.warns(FutureWarning, match=r"output.tensorboard is deprecated: use output.trackers"):
        assert load_config(old).output.trackers == ["tensorboard"]
    old.write_text("[train]\nbranches = 2\n[output]\ntensorboard = false\n")
    with pytest.warns(FutureWarning):
        assert load_config(old).output.trackers == []
    assert load_config(None, ["train.branches=2", 'output.trackers=["wandb"]']).output.trackers == ["wandb"]


def test_the_defaults_validate():
    """Config() is DDPO_IS (one branch, batch advantages): valid as it stands, so ``--set`` alone can start a run."""
    from hrf.config import Config, validate

    cfg = Config()
    validate(cfg)
    assert (cfg.schedule.kind, cfg.train.branches, cfg.train.advantage_norm) == ("full", 1, "batch")


def test_train_without_a_preset_runs_on_the_defaults(tmp_path):
    from hrf.cli.main import main
    from hrf.models import save_model, tiny_unet
    from tests.helpers import celebahq_like_scheduler

    model = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    sets = [f"model.path={str(model)!r}", "sampling.num_steps=4", "train.max_epochs=1", "train.references=2"]
    argv = ["train", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    assert load_config(tmp_path / "run" / "config.toml").schedule.kind == "full"
