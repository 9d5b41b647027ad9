"""Schemathesis over the API's own OpenAPI schema (issue 4, item 7).

Every operation the app publishes at /openapi.json is fuzzed three ways: its documented
examples, data that matches the schema (positive), and data that breaks it (negative), with a small
fixed budget so CI stays short. Each generated request is sent as a randomly chosen caller
(anonymous, a member, a shop, a treasurer, or a garbage bearer token) so the authenticated
paths are exercised too. Every response must:

- never be a 5xx (bad input never crashes the server);
- use a status code, content type, headers and body the schema declares for that operation;
- if it is a 4xx, be our error shape {"error": {"code": str, "message": str}}.

Failures are collected per operation (first example of each distinct problem) and reported
together, so one run shows everything that is wrong rather than the first thing.

Written against schemathesis 4.32 (Python API: schemathesis.openapi.from_dict on the app's
own /openapi.json, APIOperation.as_strategy / get_strategies_from_examples,
Case.as_transport_kwargs, Case.validate_response) and hypothesis 6.x. Requests go through one
FastAPI TestClient held open for the module, so the app's lifespan runs once, as under uvicorn:
schemathesis's ASGI transport (from_asgi + Case.call) would start the lifespan itself, and its
pytest plugin ends it after every test; this app's lifespan closes the group-commit writer on
shutdown and a restarted lifespan never opens a new one, so every POST after the first test would
get 503 "the ledger writer is shut down".
For a longer run: AYNI_FUZZ_EXAMPLES=300 pytest tests/test_api_schema.py (default 25 per
operation and mode).

Nothing here skips under CI=true: without schemathesis the module fails to import there (it
only skips, loudly, on a developer's machine), and the (operation, mode) pairs that have no
cases to generate (no documented examples; no inputs to break) are left out of the
parametrisation at collection time rather than skipped at run time.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from ledger import signing

from .conftest import IN_CI

if IN_CI:
    import schemathesis  # CI=true: a missing fuzzer is a failure, never a skip
else:
    schemathesis = pytest.importorskip("schemathesis", reason="!!! schemathesis not installed: API schema NOT fuzzed "
                                                              "(required when CI=true)")

from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core import NotSet  # noqa: E402
from schemathesis.core.failures import Failure, FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import Settings, create_app  # noqa: E402
from ledger.core.typed_data import address_of_key  # noqa: E402

from .conftest import Community  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("AYNI_FUZZ_EXAMPLES", "25"))
CALLERS = [None, "ana", "shop", "treasurer", "garbage"]


# -- the app under test ------------------------------------------------------------------------

class FuzzEnv:
    """A fresh SQLite community with a member, a shop and a treasurer signed in, some data to
    find (a transfer, a payment request), the app behind one open TestClient, and the schema
    the app serves at /openapi.json."""

    def __init__(self, directory: Path):
        url = f"sqlite:///{directory}/ayni.db"
        self.c = Community(url)
        self.c.member("ana")
        self.c.member("shop", role="shop")
        settings = Settings(db_url=url, public_host="ayni.test", public_uri="https://ayni.test",
                            secret_file=str(directory / "session.key"))
        self.app = create_app(self.c.ledger, settings)
        # One client, one lifespan for the whole module, as under uvicorn. (Schemathesis's own ASGI
        # transport starts the app's lifespan itself and its pytest plugin ends it after every test;
        # this app's lifespan cannot be restarted - see the module docstring - so requests go
        # through this client instead.)
        self.client = client = TestClient(self.app)
        client.__enter__()
        self.tokens = {name: self._sign_in(client, name) for name in ("ana", "shop", "treasurer")}
        self.tokens["garbage"] = "not-a-token"
        # something for the readers to find: seq 1.. exist, one open request
        sub = self.c.pay("ana", "shop", 5, currency="CRED", memo="seed")
        r = client.post("/v1/transfers", json=signing.transfer_json(sub))
        assert r.status_code == 201, r.text
        r = client.post("/v1/requests", headers=self.headers("shop"),
                        json={"payer": self.c.addr("ana"), "currency": "CRED", "amount": 7, "memo": "seed"})
        assert r.status_code == 201, r.text
        self.request_id = r.json()["id"]
        spec = client.get("/openapi.json")
        assert spec.status_code == 200, spec.text
        self.schema = schemathesis.openapi.from_dict(spec.json())

    def send(self, case, who: str | None):
        """Send a generated case through the module's TestClient (requests-style kwargs -> httpx)."""
        kw = case.as_transport_kwargs(base_url=str(self.client.base_url), headers=self.headers(who))
        data = kw.pop("data", None)
        if isinstance(data, (bytes, str)):
            kw["content"] = data
        elif data is not None:
            kw["data"] = data
        kw.pop("cookies", None)  # the API sets and reads none; httpx wants them on the client
        return self.client.request(**kw)

    def _sign_in(self, client: TestClient, name: str) -> str:
        key = self.c.treasurer_key if name == "treasurer" else self.c.keys[name]
        ch = client.post("/v1/auth/challenge", json={"address": address_of_key(key)})
        assert ch.status_code == 200, ch.text
        message = ch.json()["message"]
        sig = Account.sign_message(encode_defunct(text=message), key).signature.hex()
        r = client.post("/v1/auth/token", json={"message": message, "signature": "0x" + sig.removeprefix("0x")})
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}

    def close(self) -> None:
        self.client.__exit__(None, None, None)  # lifespan shutdown: stops the group-commit writer
        self.c.dispose()




def _published_spec() -> dict:
    """The app's own OpenAPI document, read at collection time, so a new route is fuzzed
    without anyone remembering to list it here."""
    with tempfile.TemporaryDirectory() as d:
        c = Community(f"sqlite:///{d}/ayni.db")
        try:
            return create_app(c.ledger, Settings(secret_file=f"{d}/session.key")).openapi()
        finally:
            c.dispose()


SPEC = _published_spec()
OPERATIONS = [(m.upper(), p) for p, ops in SPEC["paths"].items() for m in ops
              if m in {"get", "put", "post", "patch", "delete"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = FuzzEnv(tmp_path_factory.mktemp("schema"))
    yield e
    e.close()


# -- checks -------------------------------------------------------------------------------------

class ErrorShapeViolation(Failure):
    code = "ST990"
    kind_title = "4xx body is not {\"error\": {\"code\": str, \"message\": str}}"


def error_shape(ctx, response, case) -> None:
    """Every client fault is JSON {"error": {"code": str, "message": str}}."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    ok = (isinstance(err, dict) and isinstance(err.get("code"), str) and err["code"]
          and isinstance(err.get("message"), str) and err["message"])
    if not ok:
        raise ErrorShapeViolation(operation=case.operation.label,
                                  message=f"status {response.status_code}, body {response.content[:300]!r}")
    return None


RESPONSE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance, error_shape]


# -- the run ------------------------------------------------------------------------------------

def _describe(case, who, response, failure: Failure) -> str:
    body = None if isinstance(case.body, NotSet) else case.body
    sent = {"path": case.formatted_path, "query": case.query or None, "body": body, "caller": who}
    return (f"[{failure.code}] {failure.title}\n    {failure.message.strip().replace(chr(10), ' | ')}\n"
            f"    request: {case.method} {json.dumps(sent, default=repr)[:600]}\n"
            f"    response: {response.status_code} {response.headers.get('content-type', '')} "
            f"{response.content[:300]!r}")


def _strategy(operation, mode: str):
    """Cases for one operation: its documented examples, schema-valid data, or schema-breaking data.
    None when there is nothing to generate in that mode."""
    if mode == "examples":
        strategies = operation.get_strategies_from_examples()
        return st.one_of(strategies) if strategies else None
    if mode == "negative" and not (operation.path_parameters or operation.query or operation.headers
                                   or operation.body):
        return None
    return operation.as_strategy(generation_mode=GenerationMode(mode))


def _cases_to_run() -> list[tuple[str, str, str]]:
    """(method, path, mode) for every mode that has cases for the operation."""
    schema = schemathesis.openapi.from_dict(SPEC)
    return [(m, p, mode) for m, p in OPERATIONS for mode in ("examples", "positive", "negative")
            if _strategy(schema[p][m], mode) is not None]


CASES = _cases_to_run()


def _only_free_text_path_parameters(operation) -> bool:
    """True when every input is a path parameter that any URL segment satisfies: then no
    request can break the schema, and 'no negative case' is the right answer."""
    params = list(operation.path_parameters or [])
    return (bool(params) and not operation.query and not operation.headers and not operation.body
            and all(p.definition.get("schema", {}).get("type") == "string"
                    and not set(p.definition.get("schema", {})) - {"type", "title"} for p in params))


@pytest.mark.parametrize("method,path,mode", CASES, ids=[f"{m} {p}-{mode}" for m, p, mode in CASES])
def test_operation_conforms_to_its_schema(env, method, path, mode):
    operation = env.schema[path][method]
    strategy = _strategy(operation, mode)
    checks = RESPONSE_CHECKS + ([negative_data_rejection] if mode == "negative" else [])
    found: dict[tuple, str] = {}  # (failure code, status, title) -> first example
    calls = {"n": 0}

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy, who=st.sampled_from(CALLERS))
    def run(case, who):
        headers = env.headers(who)
        response = env.send(case, who)
        calls["n"] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            for f in group.exceptions:
                found.setdefault((f.code, response.status_code, f.title), _describe(case, who, response, f))
        except Failure as f:
            found.setdefault((f.code, response.status_code, f.title), _describe(case, who, response, f))

    try:
        run()
    except Unsatisfiable:
        # e.g. a plain string path parameter: anything in a URL segment is "a string", so there is
        # no schema-breaking value to send
        if calls["n"] == 0 and mode == "negative" and _only_free_text_path_parameters(operation):
            return
        raise
    if found:
        pytest.fail(f"{method} {path} ({mode}): {len(found)} distinct problem(s) in {calls['n']} calls\n"
                    + "\n".join(found.values()), pytrace=False)


def test_every_published_operation_is_fuzzed(env):
    """The schema the fuzzer loaded is the one the parametrisation was built from."""
    loaded = sorted((op.ok().method.upper(), op.ok().path) for op in env.schema.get_all_operations())
    assert loaded == sorted(OPERATIONS)
    assert ("POST", "/v1/transfers") in OPERATIONS and len(OPERATIONS) >= 15
