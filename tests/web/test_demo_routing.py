"""`make run`'s hub shows automatic distribution out of the box: started the way the Makefile
starts it (the demo tenant with OMNIHUB_DEMO_ROUTING=1, bot on), a customer who asks the bot
for a person is offered to the demo agent by the skill-based router, in headless Chromium.
Its start-up banner names every page the README promises and the demo logins, and logs each
bot action once."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import AGENT_EMAIL, AGENT_PASSWORD, ROOT, HubProcess
from tests.web import test_browser as shared
from tests.web.accessibility import assert_accessible
from tests.web.test_routing_inbox import customer_asks, offer_card

expect = shared.expect
Page = shared.Page

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page

SECOND_AGENT = "lin@demo.omnihub.test"


def make_run_env() -> dict[str, str]:
    """The settings the Makefile's `run` recipe gives `omnihub serve`."""
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    found = dict(re.findall(r"(OMNIHUB_[A-Z_]+)=\$\$\{\1-([^}]*)\}", recipe))
    assert found == {"OMNIHUB_DEMO_ROUTING": "1"}, recipe
    return found


@pytest.fixture
def run_hub(tmp_path: Path) -> Iterator[HubProcess]:
    hub = HubProcess(
        env={
            **make_run_env(),
            "OMNIHUB_DATA_DIR": str(tmp_path / "var"),
            "OMNIHUB_BOT_ENABLED": "1",  # on by default; HubProcess turns it off unless told
            "OMNIHUB_LOG_LEVEL": "info",  # the default
        }
    )
    hub.log_path = tmp_path / "hub.log"
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def banner_of(hub: HubProcess) -> str:
    assert hub.log_path is not None
    deadline = time.monotonic() + 30
    while "demo editor login" not in (text := hub.log_path.read_text()):
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.1)
    return text


def test_a_new_web_chat_is_offered_to_the_demo_agent(
    run_hub: HubProcess, open_page, tmp_path: Path
) -> None:
    log = banner_of(run_hub)
    for line in (
        f"knowledge-base editor:          {run_hub.url}/kb",
        f"public help center:             {run_hub.url}/help",
        f"demo agent login: {AGENT_EMAIL} / {AGENT_PASSWORD}",
        f"second demo agent (Chinese, special needs): {SECOND_AGENT} / {AGENT_PASSWORD}",
        "choose Available in the inbox header",
    ):
        assert line in log, log
    # The bot's actions are named once, not once per rasa-sdk executor (they were twice).
    assert "Registered function for" not in log
    [actions] = [ln for ln in log.splitlines() if "front-line bot actions: " in ln]
    assert "action_answer_from_kb" in actions and "action_hand_off" in actions

    agent = open_page()
    resp = agent.request.post(
        run_hub.url + "/api/auth/login", data={"email": AGENT_EMAIL, "password": AGENT_PASSWORD}
    )
    assert resp.ok, resp.text()
    profiles = {
        a["id"]: a for a in agent.request.get(run_hub.url + "/api/routing/agents").json()["agents"]
    }
    assert sorted(sorted(p["teams"]) for p in profiles.values()) == [
        ["china-desk", "special-needs"],
        ["shop-floor"],
    ]
    agent.goto(run_hub.url + "/inbox")
    presence = agent.get_by_test_id("presence-select")
    expect(presence).to_have_value("offline")  # nobody is offered work before saying so
    presence.select_option("available")
    expect(presence).to_be_enabled()

    customer = open_page()
    conv_id = customer_asks(customer, run_hub.url, "I want to talk to a person")
    offer = offer_card(agent, conv_id)
    expect(offer).to_be_visible(timeout=30_000)  # the bot hands over, the router offers
    expect(offer.get_by_test_id("offer-why")).to_contain_text("Best match of 1 available agents")
    assert_accessible(agent)
    offer.get_by_test_id("offer-accept").click()
    expect(agent.get_by_test_id("conv-status")).to_have_text("Assigned")

    # The second demo agent signs in with the printed login.
    other = open_page()
    resp = other.request.post(
        run_hub.url + "/api/auth/login", data={"email": SECOND_AGENT, "password": AGENT_PASSWORD}
    )
    assert resp.ok, resp.text()
