"""``kafka-reassign-partitions``'s pure parts: Kafka's JSON formats and the generated plan."""

from __future__ import annotations

import json
import random

import pytest

from tools.cli_client import CliError
from tools.reassign_partitions import (
    assignment_json,
    generate_assignment,
    parse_reassignment,
    parse_topics_to_move,
)


def test_reassignment_json_round_trip() -> None:
    plan = {("a", 1): [3, 1], ("a", 0): [1, 2]}
    text = assignment_json(plan)
    assert text == ('{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1,2],'
                    '"log_dirs":["any","any"]},{"topic":"a","partition":1,"replicas":[3,1],'
                    '"log_dirs":["any","any"]}]}')
    assert parse_reassignment(json.loads(text)) == plan


@pytest.mark.parametrize(("data", "message"), [
    ({"version": 2, "partitions": []}, "Not supported version"),
    ({"version": 1}, "Missing partitions"),
    ({"partitions": [{"topic": "a", "partition": 0, "replicas": []}]}, "cannot be empty"),
    ({"partitions": [{"topic": "a", "partition": 0, "replicas": [1, 1]}]}, "Duplicate replica"),
    ({"partitions": [{"topic": "a", "partition": 0, "replicas": [1]},
                     {"topic": "a", "partition": 0, "replicas": [2]}]}, "Duplicate reassignment"),
    ({"partitions": [{"topic": "a", "partition": 0, "replicas": [1],
                      "log_dirs": ["/d"]}]}, "log dirs is not supported"),
    ({"partitions": [{"topic": "a", "partition": "0", "replicas": [1]}]}, "bad partition"),
])
def test_bad_reassignment_json(data: object, message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_reassignment(data)


def test_topics_to_move() -> None:
    assert parse_topics_to_move({"topics": [{"topic": "a"}, {"topic": "b"}], "version": 1}) \
        == ["a", "b"]
    with pytest.raises(CliError, match="Duplicate topic"):
        parse_topics_to_move({"topics": [{"topic": "a"}, {"topic": "a"}]})
    with pytest.raises(CliError):
        parse_topics_to_move({"topic": "a"})


def test_generated_plan_keeps_each_topics_replication_factor_on_the_given_brokers() -> None:
    current = {("a", 0): [1, 2], ("a", 1): [2, 1], ("a", 2): [1, 2], ("b", 0): [1]}
    plan = generate_assignment(current, [3, 4, 5], random.Random(1))
    assert set(plan) == set(current)
    for tp, replicas in plan.items():
        assert len(replicas) == len(current[tp]) and set(replicas) <= {3, 4, 5}
        assert len(set(replicas)) == len(replicas)
    assert len({r[0] for (t, _), r in plan.items() if t == "a"}) == 3  # leaders spread
    with pytest.raises(CliError, match="larger than available brokers"):
        generate_assignment({("a", 0): [1, 2, 3]}, [4, 5], random.Random(1))
