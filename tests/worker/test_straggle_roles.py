"""Straggler rules hold back the trainer or the aggregator role of a worker."""

import pytest

from worker.config import ConfigError, RunConfig
from worker.runner import straggle_delay
from worker.straggle import parse_straggle


def test_role_round_trips_through_the_cli_syntax():
    rules = parse_straggle("shiftexp:worker=4,shift=2,rate=1,role=aggregator;worker=1,delay=2")
    assert [r.role for r in rules] == ["aggregator", "trainer"]
    assert parse_straggle(";".join(r.to_spec() for r in rules)) == rules


def test_delays_are_split_by_role():
    # Prepare: worker 1 is a slow trainer, worker 2 a slow aggregator
    cfg = RunConfig(workers=3, mode="mds", k=2,
                    straggle=parse_straggle("worker=1,delay=2;worker=2,delay=3,role=aggregator"))
    # Execute / Assert
    assert straggle_delay(cfg, 1, 1) == 2.0
    assert straggle_delay(cfg, 1, 1, role="aggregator") == 0.0
    assert straggle_delay(cfg, 2, 1) == 0.0
    assert straggle_delay(cfg, 2, 1, role="aggregator") == 3.0


def test_unknown_role_is_a_one_line_error():
    with pytest.raises(ConfigError, match="Argument 'straggle.role' must be one of"):
        parse_straggle("worker=1,delay=2,role=boss")
