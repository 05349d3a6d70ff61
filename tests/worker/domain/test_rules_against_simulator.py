"""The pipeline's input rules against the simulator's, which were written independently from the same IMS pages:
whatever the API accepts, the simulator accepts; whatever the simulator refuses, the API refuses at submission with
a 4xx naming the field. Property-based (hypothesis), so the strings that break a rule are searched for, not listed.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.errors import InvalidRequest
from api.validation import parse_item
from cli.processes import free_port
from config.settings import AccountSettings, load_settings
from simulator.catalog.kinds import DEFAULT_KEYS
from simulator.catalog.records import image_id_for, key_id_for
from simulator.errors import ImsError
from simulator.randomness import SeededStreams
from simulator.replication import parse_copy_body
from worker.errors import ImsRefusedError
from worker.ims.client import ImsClient

IMAGE = "0d944950-f21f-5d2f-93dd-72353bf37a89"
TOKEN = "rules-test-token-0b4c7e"
SETTINGS = load_settings(
    redis_url=f"redis://127.0.0.1:{free_port()}/0",  # never reached: a refused request stores nothing
    redis_allow_no_password=True,
    api_tokens=TOKEN,
    accounts={"default": {"project_id": "0" * 32, "access_key": "AKRULES", "secret_key": "SKRULES"}},
)

# Every character class the two rule sets talk about, and their edges: ASCII punctuation, the whitespace IMS forbids,
# the CJK block's ends (U+4E00..U+9FA5 for the pipeline, ..U+9FFF for the simulator) and what lies just outside.
EDGES = "\n\r\t \u00a0<>/:;-._'\"\\%&ÄéЖ\u3007\u4dff\u4e00\u4e01\u9fa5\u9fa6\u9fff\ua000\U00020000"
_text = st.one_of(
    st.text(alphabet=st.sampled_from(EDGES + "aZ09"), max_size=20),
    st.text(max_size=12),
    st.from_regex(r"[A-Za-z0-9\-._ \u4e00-\u9fff]{1,130}", fullmatch=True),
    st.text(alphabet="ab ", min_size=120, max_size=135),
)
# Each value also with a line feed or a space after it: the cases a ``$`` or a strip gets wrong.
values = st.tuples(_text, st.sampled_from(["", "\n", " ", "\r\n"])).map("".join)
FAST = settings(max_examples=300, deadline=None)


def api_verdict(field: str, value: str) -> set[str] | None:
    """None when the API accepts ``value`` for ``field``; otherwise the fields its 422 names."""
    try:
        parse_item({"image_id": IMAGE, field: value}, SETTINGS)
    except InvalidRequest as exc:
        return {e.field for e in exc.errors}
    return None


def simulator_accepts(body: dict[str, Any]) -> bool:
    try:
        parse_copy_body(json.dumps(body).encode())
    except ImsError:
        return False
    return True


def check(field: str, value: str, sim_ok: bool) -> None:
    refused_for = api_verdict(field, value)
    if refused_for is None:
        assert sim_ok, f"the API accepts {field}={value!r}, the simulator refuses it"
    if not sim_ok:
        assert refused_for is not None and field in refused_for, (field, value, refused_for)


@FAST
@given(values)
def test_names(name: str) -> None:
    check("name", name, simulator_accepts({"name": name}))


@FAST
@given(values)
def test_descriptions(description: str) -> None:
    check("description", description, simulator_accepts({"name": "ok", "description": description}))


@settings(max_examples=25, deadline=None)
@given(values.filter(lambda v: not simulator_accepts({"name": v})))
def test_what_the_simulator_refuses_the_api_answers_422_naming_the_field(name: str) -> None:
    with TestClient(create_app(SETTINGS)) as client:
        answer = client.post(
            "/v1/replications", json={"image_id": IMAGE, "name": name}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert "name" in {error["field"] for error in answer.json()["errors"]}


@FAST
@given(st.from_regex(r"[0-9a-f]{32}", fullmatch=True), st.text(min_size=1), st.integers(0, 2**32))
def test_every_id_the_simulator_makes_is_accepted(project_id: str, name: str, seed: int) -> None:
    for image_id in (image_id_for(project_id, name), SeededStreams(seed).image_id()):
        assert api_verdict("image_id", image_id) is None, image_id
    assert api_verdict("kms_key", key_id_for(project_id, name)) is None


def test_every_key_alias_of_the_simulators_catalogue_is_accepted() -> None:
    for key in DEFAULT_KEYS:
        assert api_verdict("kms_key", key["key_alias"]) is None, key


_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.tuples(st.uuids().map(str), st.sampled_from(["\n", " ", "0", "/", "%0A", "/../x"])).map("".join),
    st.text(alphabet="0123456789abcdefABCDEF-\n/", min_size=30, max_size=40),
)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory):
    from cli.stack import LocalStack, StackOptions  # noqa: PLC0415

    options = StackOptions(state_dir=tmp_path_factory.mktemp("rules-sim"), simulator={"seed": 1})
    with LocalStack(options) as stack:
        info = stack.start_simulator()
        account = AccountSettings(
            region=info.simulator_region, project_id=info.simulator_project_id, ims_endpoint=info.simulator_url,
            kms_endpoint=info.simulator_url, iam_endpoint=info.simulator_url,
            access_key=info.simulator_access_key, secret_key=info.simulator_secret_key,
        )  # fmt: skip
        with ImsClient(account, connect_timeout=5, read_timeout=30) as ims:
            yield ims


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image_id=_ids, key=st.one_of(_ids, values))
def test_ids_and_key_references_the_api_accepts_reach_the_simulators_lookups(simulator, image_id, key) -> None:
    """An image ID or key reference the API accepts is looked up by the simulator (found or not), never refused as
    malformed; the worker's calls are the ones validation and submission make."""
    if api_verdict("image_id", image_id) is None:
        with pytest.raises(ImsRefusedError) as refused:
            simulator.copy_image(image_id.lower(), name="rules-check")
        assert refused.value.code == "IMG.0027", (image_id, refused.value)  # "does not exist", not "malformed"
    if api_verdict("kms_key", key) is None:
        assert simulator.find_key(key) is None or key in {k["key_alias"] for k in DEFAULT_KEYS}


def test_an_unknown_but_well_formed_image_id_is_a_lookup_miss(simulator) -> None:
    with pytest.raises(ImsRefusedError) as refused:
        simulator.copy_image(str(uuid.uuid4()), name="rules-check")
    assert refused.value.code == "IMG.0027"
