"""A bounded fuzz of the public HTTP surface: malformed bodies, parameters and encodings
thrown at every operation of a real `omnihub serve`'s OpenAPI document, as an anonymous
client, a signed-in agent and a web chat customer. No answer may be a 5xx and the hub may
log no traceback.

Hypothesis (plain strategies, a fixed seed, a few hundred requests) rather than schemathesis:
the point is input the schema does *not* describe (broken multipart, wrong encodings, deep
nesting, 64-bit overflows), and plain strategies send it with a few lines and no extra
dependency tree.
"""

from __future__ import annotations

import http.client
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import start_live_hub
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, HubProcess

EXAMPLES = 300
SKIPPED = {("POST", "/api/auth/logout")}  # would end the agent session the fuzz uses

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
params = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0", "-1", "1", str(2**63), "9" * 40, "me", "none", "1e308", "%00", "１"]),
)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _multipart(junk: bytes) -> tuple[bytes, str]:
    body = (
        b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a\x01.txt"\r\n'
        + junk
        + b"\r\n\r\nhello\r\n--zz--\r\n"
    )
    return body, "multipart/form-data; boundary=zz"


bodies = st.one_of(
    json_values.map(lambda v: (json.dumps(v).encode(), "application/json", None)),
    st.binary(max_size=200).map(lambda b: (b, "application/json", None)),
    st.binary(max_size=200).map(lambda b: (b, "application/json", "deflate")),
    json_values.map(
        lambda v: (zlib.compress(json.dumps(v).encode()), "application/json", "deflate")
    ),
    st.integers(min_value=65, max_value=3000).map(lambda d: (_nested(d), "application/json", None)),
    st.binary(max_size=80).map(lambda b: (*_multipart(b), None)),
    st.binary(max_size=200).map(lambda b: (b, "multipart/form-data; boundary=zz", None)),
    st.just((b"", "", None)),
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    proc = start_live_hub(
        tmp_path_factory.mktemp("fuzz"),
        OMNIHUB_ACTION_SERVER_TOKEN="fuzz-token-0123456789abcdef",
        OMNIHUB_KB_SEMANTIC="false",  # BM25 only: loading the embedding model adds nothing here
    )
    try:
        yield proc
    finally:
        proc.stop()


def _request(
    hub: HubProcess,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


@pytest.fixture(scope="module")
def clients(hub: HubProcess) -> dict[str, dict[str, str]]:
    """Headers (and a query token) of the three kinds of caller."""
    login = json.dumps({"email": AGENT_EMAIL, "password": AGENT_PASSWORD}).encode()
    status, body, resp = _request(
        hub, "POST", "/api/auth/login", login, {"Content-Type": "application/json"}
    )
    assert status == 200, body
    cookie = "; ".join(c.split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie") or [])
    csrf = json.loads(body)["csrf_token"]
    status, body, _ = _request(
        hub, "POST", "/api/webchat/sessions", b"{}", {"Content-Type": "application/json"}
    )
    assert status in (200, 201), body
    return {
        "anonymous": {},
        "agent": {"Cookie": cookie, "X-CSRF-Token": csrf},
        "customer": {"token": json.loads(body)["token"]},
        "rasa": {"Authorization": "Bearer fuzz-token-0123456789abcdef"},
    }


@pytest.fixture(scope="module")
def operations(hub: HubProcess) -> list[tuple[str, str]]:
    status, body, _ = _request(hub, "GET", "/api/openapi.json")
    assert status == 200
    found = [
        (method.upper(), path) for path, ops in json.loads(body)["paths"].items() for method in ops
    ]
    assert len(found) > 20
    return [op for op in found if op not in SKIPPED]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_input_gives_a_5xx(
    hub: HubProcess,
    clients: dict[str, dict[str, str]],
    operations: list[tuple[str, str]],
    data: st.DataObject,
) -> None:
    method, template = data.draw(st.sampled_from(operations))
    path = re.sub(r"\{[^}]+\}", lambda _: quote(data.draw(params), safe="") or "x", template)
    who = data.draw(st.sampled_from(sorted(clients)))
    headers = {k: v for k, v in clients[who].items() if k != "token"}
    query = data.draw(
        st.dictionaries(
            st.sampled_from(
                ["token", "limit", "assignee", "q", "lang", "status", "client_id", "days", "x"]
            ),
            params,
            max_size=3,
        )
    )
    if "token" in clients[who]:
        query.setdefault("token", clients[who]["token"])
    body, content_type, encoding = data.draw(bodies)
    if content_type:
        headers["Content-Type"] = content_type
    if encoding:
        headers["Content-Encoding"] = encoding
    target = path + ("?" + urlencode(query) if query else "")
    try:
        status, answer, _ = _request(hub, method, target, body if method != "GET" else b"", headers)
    except TimeoutError:
        pytest.fail(f"no answer in 60 s to {method} {target} {headers} {body[:200]!r}")
    assert status < 500, (method, target, headers, body[:200], answer[:300])


def test_the_fuzzed_hub_logged_no_traceback(hub: HubProcess) -> None:
    """Runs after the fuzz (same module, in file order): nothing was logged as a fault."""
    assert hub.log_path is not None
    log = Path(hub.log_path).read_text(errors="replace")
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
