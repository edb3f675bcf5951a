"""Erlang C and the simulator, and the two agreeing where the textbook model holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.errors import ValidationFailed
from hub.routing import ConfigFileError
from hub.routing.erlang import agents_needed, erlang_c, staffing
from hub.routing.simulate import load_traffic, simulate
from tests.routing.support import POLICY, policy

OMNIHUB = Path(sys.executable).parent / "omnihub"
# one catch-all step long enough that nobody overflows: the M/M/N queue Erlang C describes
PATIENT_POLICY = POLICY.replace("{timeout_s: 600}", "{timeout_s: 86400}")


def traffic(
    agents: int,
    per_hour: float,
    hours: int,
    aht_s: float,
    target_s: float,
    extra: str = "",
    seed: int = 1,
) -> str:
    roster = "\n".join(f"  - {{id: {i}, skills: {{tech: 3}}}}" for i in range(1, agents + 1))
    return (
        f"interval_s: 3600\nservice_level_s: {target_s}\nseed: {seed}\n"
        f"intervals: {[per_hour] * hours}\n"
        f"mix:\n  - {{channel: voice, skills: {{tech: 1}}, aht_s: {aht_s}{extra}}}\n"
        f"agents:\n{roster}\n"
    )


def test_erlang_c_textbook_values() -> None:
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert erlang_c(2, 2.0) == 1.0
    result = staffing(100, 180, 20, 7)  # 5 erlangs on 7 agents
    assert result.traffic_erlangs == pytest.approx(5.0)
    assert result.probability_wait == pytest.approx(0.3241, abs=1e-4)
    assert result.service_level == pytest.approx(0.7404, abs=1e-4)
    assert result.asa_s == pytest.approx(29.17, abs=0.01)
    assert result.occupancy == pytest.approx(5 / 7)
    sized = agents_needed(100, 180, 20, 0.8)
    assert sized.agents == 8 and sized.service_level >= 0.8
    assert staffing(100, 180, 20, sized.agents - 1).service_level < 0.8
    assert agents_needed(100, 180, 20, 0.8, max_occupancy=0.5).agents == 10
    with pytest.raises(ValidationFailed):
        agents_needed(-1, 180, 20, 0.8)
    with pytest.raises(ValidationFailed):
        staffing(100, 180, 20, 0)


def test_simulated_service_level_agrees_with_erlang_c() -> None:
    # 10 agents, 7 erlangs (420 calls an hour of 60 s), 15 s target, about 40,000 calls
    loaded = policy(PATIENT_POLICY)
    spec = load_traffic(traffic(10, 420, 96, 60, 15), loaded, "traffic.yaml")
    report = simulate(loaded, spec)
    expected = staffing(420, 60, 15, 10)
    total = report.total
    assert total.offered > 38_000 and total.answered == total.offered
    assert total.abandoned == 0 and total.overflowed == 0
    assert total.service_level is not None and total.asa_s is not None
    assert total.occupancy is not None
    assert abs(total.service_level - expected.service_level) <= 0.02
    assert abs(total.occupancy - expected.occupancy) <= 0.02
    assert total.asa_s == pytest.approx(expected.asa_s, rel=0.2)


def test_impatient_callers_abandon_and_long_waits_overflow() -> None:
    loaded = policy()  # the catch-all step overflows to leave_message after 600 s
    patient = simulate(loaded, load_traffic(traffic(2, 120, 4, 120, 20), loaded))
    assert patient.total.overflowed > 0 and patient.overflow_actions == {
        "leave_message": patient.total.overflowed
    }
    impatient = simulate(
        loaded, load_traffic(traffic(2, 120, 4, 120, 20, ", patience_s: 30"), loaded)
    )
    assert impatient.total.abandonment is not None and impatient.total.abandonment > 0.3
    assert impatient.total.overflowed < patient.total.overflowed
    for interval in impatient.intervals:
        assert interval.occupancy is not None and 0.5 < interval.occupancy <= 1.0


def test_traffic_problems_name_their_lines() -> None:
    text = traffic(1, 10, 1, 60, 20).replace("skills: {tech: 1}", "skills: {cooking: 1}")
    with pytest.raises(ConfigFileError) as caught:
        load_traffic(text + "  - {id: 2, skills: {}}\n", policy(), "traffic.yaml")
    assert caught.value.problems == [
        "traffic.yaml:9: agents[1].skills: Dictionary should have at least 1 item after "
        "validation, not 0"
    ]
    with pytest.raises(ConfigFileError) as caught:
        load_traffic(text, policy(), "traffic.yaml")
    assert caught.value.problems == [
        "traffic.yaml:6: mix[0].skills.cooking: unknown skill 'cooking'"
    ]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OMNIHUB), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_cli_simulate_and_erlang(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "traffic.yaml").write_text(traffic(3, 60, 3, 120, 20))
    done = run("simulate", "--policy", "policy.yaml", "--traffic", "traffic.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "interval",
        "offered",
        "answered",
        "SL",
        "ASA",
        "s",
        "aband.",
        "overfl.",
        "occup.",
    ]
    assert [line.split()[0] for line in lines[1:5]] == ["00:00", "01:00", "02:00", "total"]
    as_json = run(
        "simulate", "--policy", "policy.yaml", "--traffic", "traffic.yaml", "--json", cwd=tmp_path
    )
    data = json.loads(as_json.stdout)
    assert len(data["intervals"]) == 3 and data["total"]["offered"] > 100

    (tmp_path / "bad.yaml").write_text(POLICY.replace("{timeout_s: 600}", "{}"))
    bad = run("simulate", "--policy", "bad.yaml", "--traffic", "traffic.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith(
        "omnihub: bad.yaml:27: inboxes.support.filters[2].steps[0].timeout_s: Field required"
    )

    erl = run("erlang", "--rate", "100", "--aht", "180", "--target", "20", "--json", cwd=tmp_path)
    assert json.loads(erl.stdout) == {
        "agents": 8,
        "traffic_erlangs": 5.0,
        "probability_wait": 0.1673,
        "service_level": 0.8801,
        "asa_s": 10.04,
        "occupancy": 0.625,
    }
    erl = run("erlang", "--rate", "100", "--aht", "180", "--agents", "7", cwd=tmp_path)
    assert "74.0% answered within 20 s" in erl.stdout
    erl = run("erlang", "--rate", "0", "--aht", "180", cwd=tmp_path)
    assert erl.returncode == 1 and "arrival rate" in erl.stderr
