"""Perturbation suites: the shipped ones load and keep tuning and reporting seeds apart; bad
suite files are refused with the entry and field at fault."""

import pytest
import yaml

from robostack.sim.perturbation_suites import SuiteError, available_suites, check_disjoint, load_suite, parse_suite
from robostack.sim.perturbations import FAMILIES


def suite_dict(**overrides):
    d = {
        "name": "mine",
        "purpose": "report",
        "task": "pick_place",
        "seeds": {"start": 500, "stride": 10},
        "entries": [{"family": "none", "episodes": 3}, {"family": "mass", "severity": 50, "harmless": False, "episodes": 2}],
    }
    d.update(overrides)
    return d


def test_shipped_tune_and_report_suites_are_disjoint_and_cover_every_family():
    assert {"tune", "report"} <= set(available_suites())
    tune, report = load_suite("tune"), load_suite("report")
    assert (tune.purpose, report.purpose) == ("tune", "report")
    check_disjoint(tune, report)
    for suite in (tune, report):
        groups = {entry.group for entry in suite.entries}
        assert groups == {"unperturbed", "harmless", "harmful"}
        seeds = [seed for _, seed in suite.episodes()]
        assert len(seeds) == len(set(seeds))
        first, last = suite.seed_range
        assert all(first <= s <= last for s in seeds)
    assert {entry.perturbation.family for entry in report.entries} == set(FAMILIES)


def test_report_b_runs_the_report_entries_on_seeds_report_and_tune_never_use():
    tune, report, fresh = load_suite("tune"), load_suite("report"), load_suite("report_b")
    assert fresh.purpose == "report"
    assert [e.label() for e in fresh.entries] == [e.label() for e in report.entries]
    assert [(e.group, e.episodes) for e in fresh.entries] == [(e.group, e.episodes) for e in report.entries]
    fresh_seeds = {seed for _, seed in fresh.episodes()}
    assert fresh_seeds.isdisjoint(seed for _, seed in report.episodes())
    check_disjoint(tune, fresh)


def test_episodes_per_entry_keeps_each_entry_a_prefix_of_its_seed_block():
    suite = parse_suite(suite_dict())
    assert [(e.label(), s) for e, s in suite.episodes()] == [("none", 500), ("none", 501), ("none", 502), ("mass@50", 510), ("mass@50", 511)]
    assert [s for _, s in suite.episodes(episodes_per=1)] == [500, 510]
    with pytest.raises(SuiteError, match="seed stride"):
        suite.episodes(episodes_per=11)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"family": "wind", "severity": 1, "harmless": False, "episodes": 1}, r"entries\[1\]: unknown perturbation family 'wind'"),
        ({"family": "mass", "severity": 0, "harmless": False, "episodes": 1}, r"entries\[1\]: mass: severity 0 is outside"),
        ({"family": "mass", "severity": 5, "episodes": 1}, r"entries\[1\] \(mass\): declare harmless"),
        ({"family": "mass", "severity": 5, "harmless": True, "episodes": 11}, "do not fit the seed stride 10"),
        ({"family": "mass", "severity": 5, "harmless": True, "episodes": 0}, "episodes: expected an integer >= 1"),
        ({"family": "push", "severity": 1, "harmless": False, "episodes": 1, "speed": 3}, r"unknown option\(s\) \['speed'\]"),
    ],
)
def test_bad_entries_are_refused_naming_the_entry(entry, message):
    d = suite_dict()
    d["entries"] = [d["entries"][0], entry]
    with pytest.raises(SuiteError, match=message):
        parse_suite(d, "mine.yaml")


def test_bad_suite_files_and_names_are_refused(tmp_path):
    with pytest.raises(SuiteError, match="purpose must be one of"):
        parse_suite(suite_dict(purpose="fun"))
    with pytest.raises(SuiteError, match=r"unknown key\(s\) \['extra'\]"):
        parse_suite(suite_dict(extra=1))
    with pytest.raises(SuiteError, match="unknown perturbation suite 'nope'"):
        load_suite("nope")
    broken = tmp_path / "broken.yaml"
    broken.write_text("entries: [unclosed")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(broken)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(suite_dict()))
    assert load_suite(good).seed_range == (500, 519)
    with pytest.raises(SuiteError, match="overlap"):
        check_disjoint(load_suite(good), parse_suite(suite_dict(name="other", seeds={"start": 515, "stride": 5})))
