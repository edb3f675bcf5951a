"""Bad routing configuration is refused at load with the line that is wrong."""

from __future__ import annotations

import json

import pytest

from hub.routing import ConfigFileError, ManualClock, load_policy, load_roster
from hub.routing.engine import first_filter
from tests.routing.support import POLICY, policy, task


def problems(text: str, source: str = "policy.yaml") -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        load_policy(text, source)
    return caught.value.problems


def test_the_example_policy_loads() -> None:
    loaded = policy()
    billing = loaded.inboxes["support"].filters[1]
    assert [s.timeout_s for s in billing.steps] == [30, 60, 120]
    assert billing.overflow == "voicemail"
    assert loaded.cost("voice") == 100 and loaded.cost("email") == 20


def test_unknown_skill_names_the_line() -> None:
    text = POLICY.replace("min_level: {billing: 4}", "min_level: {biling: 4}")
    assert problems(text) == [
        "policy.yaml:21: inboxes.support.filters[1].steps[0].min_level.biling: unknown skill "
        "'biling' (declared: billing, tech, text-relay)"
    ]


def test_step_without_timeout_and_empty_steps_name_their_lines() -> None:
    text = (
        POLICY.replace("{timeout_s: 600}", "{team: tier1}")
        .replace(
            "          - {timeout_s: 60, team: special-needs}\n          - {timeout_s: 300}\n",
            "          []\n",
        )
        .replace("        steps:\n          []\n", "        steps: []\n")
    )
    found = problems(text)
    assert any(p.startswith("policy.yaml:14: inboxes.support.filters[0].steps:") for p in found)
    assert any(
        p.startswith(
            "policy.yaml:25: inboxes.support.filters[2].steps[0].timeout_s: Field required"
        )
        for p in found
    ), found


def test_cyclic_overflow_is_refused() -> None:
    text = POLICY.replace("overflow: voicemail", "overflow: filter:everything-else").replace(
        "overflow: leave_message", "overflow: filter:billing"
    )
    found = problems(text)
    assert found[0] == (
        "policy.yaml:24: inboxes.support.filters[1].overflow: overflow chain is a cycle: "
        "billing -> everything-else -> billing"
    )


def test_overflow_chain_continues_with_the_other_filters_steps() -> None:
    loaded = policy(POLICY.replace("overflow: callback", "overflow: filter:everything-else"))
    special = loaded.inboxes["support"].filters[0]
    assert [s.timeout_s for s in special.steps] == [60, 300, 600]
    assert special.overflow == "leave_message"


def test_unknown_team_bad_hours_and_no_inboxes() -> None:
    assert problems(POLICY.replace("team: tier2,", "team: tier9,"))[0].startswith(
        "policy.yaml:22: inboxes.support.filters[1].steps[1].team: unknown team 'tier9'"
    )
    bad_zone = POLICY.replace(
        "  support:\n", "  support:\n    hours: {timezone: Mars/Base, weekly: {}}\n"
    )
    assert "unknown time zone 'Mars/Base'" in problems(bad_zone)[0]
    assert problems("skills: [a]\ninboxes: {}\n")[0].startswith("policy.yaml:2: inboxes:")
    assert problems("skills: [a\n")[0].startswith("policy.yaml:2:")


def test_filter_languages_are_read_as_primary_languages_like_agents_and_conversations() -> None:
    chinese_desk = POLICY.replace(
        "      - name: everything-else\n",
        "      - name: chinese\n"
        "        match: {languages: [zh-CN, zh_TW, ZH, en-GB]}\n"
        "        steps: [{timeout_s: 60}]\n"
        "      - name: everything-else\n",
    )
    loaded = policy(chinese_desk)
    filters = loaded.inboxes["support"].filters
    assert filters[2].name == "chinese"
    assert filters[2].match.languages == frozenset({"zh", "en"})
    clock = ManualClock()
    # a conversation's language reaches the router as its primary language ("zh-CN" -> "zh")
    chosen = first_filter(filters, task(1, clock, language="zh"))
    assert chosen is not None and chosen.name == "chinese"
    other = first_filter(filters, task(2, clock, language="fr"))
    assert other is not None and other.name == "everything-else"


def test_json_policy_reports_lines_too() -> None:
    data = {"skills": ["a"], "inboxes": {"x": {"filters": [{"name": "f", "steps": [{}]}]}}}
    text = json.dumps(data, indent=2)
    found = problems(text, "policy.json")
    assert found[0].startswith("policy.json:11: inboxes.x.filters[0].steps[0].timeout_s:"), found


ROSTER = """\
agents:
  - {id: 1, skills: {billing: 4}, languages: [en, zh], teams: [tier1]}
  - id: 2
    skills: {tech: 3}
    capacity: -5
  - {id: 3, skills: {}}
  - {id: 4, skills: {cooking: 2}}
"""


def test_roster_problems_name_their_lines() -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_roster(ROSTER, policy(), "roster.yaml")
    found = caught.value.problems
    assert found[0] == (
        "roster.yaml:5: agents[1].capacity: Input should be greater than or equal to 0"
    )
    assert found[1].startswith("roster.yaml:6: agents[2].skills: Dictionary should have at least 1")
    with pytest.raises(ConfigFileError) as caught:
        load_roster("agents:\n  - {id: 4, skills: {cooking: 2}}\n", policy(), "roster.yaml")
    assert caught.value.problems[0].startswith(
        "roster.yaml:2: agents[0].skills.cooking: unknown skill 'cooking'"
    )
    agents = load_roster(ROSTER.split("  - id: 2")[0], policy(), "roster.yaml")
    assert agents[0].profile().languages == frozenset({"en", "zh"})
