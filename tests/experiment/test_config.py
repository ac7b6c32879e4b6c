"""Config validation: bad configs fail before running, naming the key and the fix."""

from __future__ import annotations

import textwrap

import pytest

from vcompute.experiment.config import ConfigError, expand_runs, load_config, parse_overrides

GOOD = textwrap.dedent("""
    [experiment]
    name = "t"
    task = "freivalds.detection"
    seeds = 2
    [params]
    rounds = 2
    [grid]
    n = [16, 32]
    behaviour = ["honest", "skip_k"]
    [report]
    group_by = ["behaviour"]
    [[plots]]
    name = "p"
    x = "n"
    y = "detected"
    [smoke]
    "grid.n" = [8]
    "experiment.seeds" = 1
""")


def test_good_config_expands_grid_times_seeds():
    cfg = load_config(text=GOOD)
    runs = expand_runs(cfg)
    assert len(runs) == 2 * 2 * 2
    assert len({r.key for r in runs}) == len(runs)
    assert {r.params["n"] for r in runs} == {16, 32}
    assert runs[0].params["trials"] == 4  # defaults are resolved into the run


def test_run_keys_are_stable_and_depend_on_params_and_seed():
    a = {r.key for r in expand_runs(load_config(text=GOOD))}
    b = {r.key for r in expand_runs(load_config(text=GOOD))}
    c = {r.key for r in expand_runs(load_config(text=GOOD, overrides=["params.rounds=3"]))}
    assert a == b and not (a & c)


def test_smoke_variant_and_overrides():
    cfg = load_config(text=GOOD, smoke=True)
    assert cfg.grid["n"] == [8] and cfg.experiment.seeds == 1
    cfg = load_config(text=GOOD, overrides=["grid.n=[64, 128]", "params.safety=9.5", "experiment.seeds=[3, 7]"])
    assert cfg.grid["n"] == [64, 128] and cfg.params["safety"] == 9.5
    assert cfg.experiment.seed_list() == [3, 7]
    # setting a swept key as a fixed param takes it out of the grid
    cfg = load_config(text=GOOD, overrides=["params.n=64"])
    assert "n" not in cfg.grid and cfg.params["n"] == 64


@pytest.mark.parametrize("mutate, expected", [
    (lambda s: s.replace('seeds = 2', 'sedes = 2'), r"experiment\.sedes: unknown key; allowed keys: .*seeds"),
    (lambda s: s.replace('seeds = 2', 'seeds = "two"'), r"experiment\.seeds"),
    (lambda s: s.replace('seeds = 2', 'seeds = 0'), r"seeds must be >= 1"),
    (lambda s: s.replace('rounds = 2', 'rounds = 0'), r"params\.rounds: Input should be greater than or equal to 1"),
    (lambda s: s.replace('rounds = 2', 'roundz = 2'), r"params\.roundz: unknown key; allowed keys: .*rounds"),
    (lambda s: s.replace('"skip_k"]', '"nope"]'), r"(?s)grid\.behaviour\[1\] = 'nope'.*unknown behaviour 'nope'; known behaviours: .*honest"),
    (lambda s: s.replace('n = [16, 32]', 'n = [16, "big"]'), r"grid\.n\[1\] = 'big'"),
    (lambda s: s.replace('n = [16, 32]', 'n = []'), r"grid.*empty list"),
    (lambda s: s.replace('"freivalds.detection"', '"nosuch"'), r"experiment\.task: unknown task 'nosuch'; known tasks: .*freivalds\.detection"),
    (lambda s: s.replace('group_by = ["behaviour"]', 'group_by = ["colour"]'), r"report\.group_by: 'colour' is not a parameter"),
    (lambda s: s.replace('x = "n"', 'x = "size"'), r"plots\[0\]\.x: 'size' is not a parameter"),
    (lambda s: s + '\n[extras]\na = 1\n', r"unknown section\(s\) 'extras'"),
    (lambda s: s.replace('name = "t"', 'name = "bad name/../x"'), r"experiment\.name"),
    (lambda s: s.replace('[experiment]', '[experiment\n'), r"not valid TOML"),
    (lambda s: s.replace('[params]\nrounds = 2', '[params]\nrounds = 2\nn = 4'), r"grid\.n is also set in \[params\]"),
    (lambda s: s + '\n', None),
])
def test_bad_configs_fail_with_key_path(mutate, expected):
    text = mutate(GOOD)
    if expected is None:
        load_config(text=text)
        return
    with pytest.raises(ConfigError, match=expected):
        load_config(text=text)


def test_bad_override_names_the_fix():
    with pytest.raises(ConfigError, match="did you mean params.rounds"):
        load_config(text=GOOD, overrides=["rounds=3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(text=GOOD, overrides=["params.rounds"])
    with pytest.raises(ConfigError, match="experiment.executor: unknown executor 'warp'"):
        load_config(text=GOOD, overrides=["experiment.executor=warp"])


def test_parse_overrides_types():
    assert parse_overrides(["a.b=1", "a.c=1.5", "a.d=true", "a.e=[1, 2]", "a.f=text", 'a.g="q"']) == [
        ("a.b", 1), ("a.c", 1.5), ("a.d", True), ("a.e", [1, 2]), ("a.f", "text"), ("a.g", "q")]


def test_missing_file():
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("/nonexistent/x.toml")


def test_a_bad_smoke_table_fails_validation_without_smoke():
    text = ('[experiment]\nname = "x"\ntask = "synthetic.burn"\n[smoke]\n"experiment.sedes" = 1\n')
    with pytest.raises(ConfigError, match=r"(?s)\[smoke\] table .*experiment.sedes: unknown key"):
        load_config(text=text)


def test_set_guesses_only_paths_that_exist():
    base = load_config("experiments/quickstart.toml")
    assert base.experiment.task == "market.run"
    with pytest.raises(ConfigError) as e:
        load_config("experiments/quickstart.toml", overrides=["nosuch.section.key=1"])
    assert "did you mean" not in str(e.value)
    with pytest.raises(ConfigError, match=r"did you mean experiment.seeds\?"):
        load_config("experiments/quickstart.toml", overrides=["seeds=3"])
    with pytest.raises(ConfigError, match=r"did you mean params.consumers.audit_p\?"):
        load_config("experiments/quickstart.toml", overrides=["consumers.audit_p=0.3"])
