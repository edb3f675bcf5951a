"""Call flows and inbound rules: loading, line-numbered errors, structure checks, and which
flow a call takes by dialled number, time window, holiday and forced override."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.calls.flows import PhoneConfig, Picked, load_phone_config, normal_number
from hub.routing import ConfigFileError

DEMO = Path(__file__).resolve().parents[2] / "hub" / "demo" / "phone.yaml"

BASE = """\
languages: [en, zh]
rules:
  - name: line
    numbers: ["+15550100"]
    hours:
      timezone: Asia/Shanghai
      weekly: {mon: ["09:00-18:00"]}
      holidays: [2026-12-14]
    open: day
    closed: night
    holiday: holiday
  - name: other
    numbers: ["*"]
    open: night
flows:
  day:
    start: hello
    steps:
      hello: {type: say, say: {en: Hello, zh: 你好}, goto: bye}
      bye: {type: hangup}
  night:
    start: bye
    steps:
      bye: {type: hangup, say: Closed}
  holiday:
    start: bye
    steps:
      bye: {type: hangup, say: Holiday}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        load_phone_config(text, "phone.yaml")
    return info.value.problems


def test_the_demo_file_loads_and_routes_by_hours() -> None:
    config = load_phone_config(DEMO.read_text(encoding="utf-8"), str(DEMO))
    assert config.languages == ("en", "zh")
    # Monday 2026-12-07 10:00 in Shanghai is 02:00 UTC: open; 20:00 Shanghai is closed
    assert pick(config, "+15550100", "2026-12-07T02:00:00").flow == "main"
    assert pick(config, "+15550100", "2026-12-07T12:00:00").flow == "after_hours"


def pick(config: PhoneConfig, number: str, when: str) -> Picked:
    found = config.choose(number, at(when))
    assert found is not None
    return found


def test_rules_pick_by_number_window_holiday_and_force() -> None:
    config = load_phone_config(BASE, "phone.yaml")
    monday_open = at("2026-12-07T02:00:00")  # Mon 10:00 Shanghai
    monday_closed = at("2026-12-07T11:00:00")  # Mon 19:00
    holiday = at("2026-12-14T02:00:00")  # a Monday, but a holiday
    line = config.choose("tel:+1 555-0100", monday_open)
    assert line is not None and (line.rule, line.flow, line.window) == ("line", "day", "open")
    assert line.inbox == "phone"
    closed = config.choose("+15550100", monday_closed)
    assert closed is not None and (closed.flow, closed.window) == ("night", "closed")
    hol = config.choose("+15550100", holiday)
    assert hol is not None and (hol.flow, hol.window) == ("holiday", "holiday")
    other = config.choose("+8613800138000", monday_open)
    assert other is not None and (other.rule, other.flow) == ("other", "night")

    forced = load_phone_config(
        BASE.replace("    holiday: holiday\n", "    holiday: holiday\n    force: night\n"), "p.yaml"
    )
    f = forced.choose("+15550100", monday_open)
    assert f is not None and (f.flow, f.window) == ("night", "forced")


def test_a_number_no_rule_takes_gets_none() -> None:
    config = load_phone_config(BASE.replace('numbers: ["*"]', 'numbers: ["+4930123"]'), "p.yaml")
    assert config.choose("+15559999", at("2026-12-07T02:00:00")) is None
    assert normal_number("sip:+15550100@pbx.example") == "+15550100"


def test_unknown_targets_name_their_lines() -> None:
    found = problems(
        BASE.replace("goto: bye}", "goto: byebye}").replace("open: night", "open: nite")
    )
    assert "phone.yaml:14: rules[1].open: no flow named 'nite'" in found
    assert any(p.startswith("phone.yaml:19:") and "no step named 'byebye'" in p for p in found)


def test_unreachable_steps_and_idle_loops_are_refused() -> None:
    text = BASE.replace(
        "      bye: {type: hangup}\n",
        "      bye: {type: hangup}\n"
        "      a: {type: say, say: A, goto: b}\n"
        "      b: {type: say, say: B, goto: a}\n",
    ).replace("start: hello", "start: a", 1)
    found = problems(text)
    assert any("loop that takes no caller input: a -> b -> a" in p for p in found), found
    assert any("step 'hello' is never reached" in p for p in found), found
    assert any(p.startswith("phone.yaml:20:") for p in found)


def test_a_menu_loop_that_waits_for_keys_is_allowed() -> None:
    text = BASE.replace(
        "      hello: {type: say, say: {en: Hello, zh: 你好}, goto: bye}\n",
        "      hello:\n"
        "        type: menu\n"
        "        say: Press 1 to hear this again\n"
        "        options: [{digit: '1', goto: hello}, {digit: '2', goto: bye}]\n"
        "        on_failure: bye\n",
    )
    load_phone_config(text, "p.yaml")
    # ...but a menu that falls back to itself after no input would never end
    looping = text.replace("on_failure: bye", "on_failure: hello")
    assert any("loop that takes no caller input: hello -> hello" in p for p in problems(looping))


def test_languages_skills_and_digits_are_checked() -> None:
    text = BASE.replace("say: {en: Hello, zh: 你好}", "say: {en: Hello, fr: Bonjour}")
    assert any("language 'fr' is not in `languages`" in p for p in problems(text))
    assert any(
        "default language 'en'" in p
        for p in problems(BASE.replace("{en: Hello, zh: 你好}", "{zh: 你好}"))
    )
    assert any(
        "not a language tag" in p for p in problems(BASE.replace("[en, zh]", "[en, Chinese!]"))
    )
    queue = BASE.replace(
        "      bye: {type: hangup}\n",
        "      bye: {type: queue, say: Wait, skills: ['billing:9'], on_timeout: end}\n"
        "      end: {type: hangup}\n",
    )
    assert any("billing:9" in p and "level 1-5" in p for p in problems(queue))
    twice = BASE.replace(
        "      hello: {type: say, say: {en: Hello, zh: 你好}, goto: bye}\n",
        "      hello: {type: menu, say: M, on_failure: bye,\n"
        "              options: [{digit: '1', goto: bye}, {digit: '1', goto: bye}]}\n",
    )
    assert any("digit '1' is used twice" in p for p in problems(twice))


def test_bad_yaml_and_bad_shapes_are_clear_errors() -> None:
    assert problems("languages: [en\n")[0].startswith("phone.yaml:2:")
    assert problems("- just a list\n") == [
        "phone.yaml:1: expected a mapping with languages, rules, flows"
    ]
    bad_type = BASE.replace("type: say", "type: sing")
    assert any(p.startswith("phone.yaml:19:") for p in problems(bad_type))


def test_json_is_read_the_same_way() -> None:
    import json

    import yaml

    data = yaml.safe_load(BASE)
    config = load_phone_config(json.dumps(data, default=str, indent=1), "phone.json")
    assert set(config.flows) == {"day", "night", "holiday"}


def test_utterances_fall_back_to_the_default_language() -> None:
    config = load_phone_config(BASE, "p.yaml")
    assert config.utterances({"en": "Hi"}, "zh") == [("en", "Hi")]
    assert config.utterances({"en": "Hi", "zh": "你好"}, "zh") == [("zh", "你好")]
    assert config.utterances([{"en": "Press 1"}, {"zh": "请按 2"}], "en") == [
        ("en", "Press 1"),
        ("zh", "请按 2"),
    ]
    assert config.utterances("Same", "zh") == [("zh", "Same")]


def test_the_check_command_validates_and_tries_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub.cli import main

    assert (
        main(
            ["phone", "check", str(DEMO), "--number", "+15550100", "--at", "2026-12-07T10:00+08:00"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "ok: 1 rules" in out and "+15550100: rule shop-line, open: flow main (inbox phone)" in out
    )
    bad = tmp_path / "phone.yaml"
    bad.write_text(BASE.replace("open: night", "open: nite"), encoding="utf-8")
    assert main(["phone", "check", str(bad)]) == 1
    assert f"omnihub: {bad}:14: rules[1].open: no flow named 'nite'" in capsys.readouterr().err
