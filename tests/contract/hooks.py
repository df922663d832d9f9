"""Schemathesis hooks of the contract run (tests/contract.rs), loaded
through SCHEMATHESIS_HOOKS by `st run`.

Three jobs, all generic over docs/openapi.yaml so that a route added to the
spec is covered without touching this file:

- Authentication per operation, read from the operation's `security` (and
  `x-required-role`): a buyer session token where `sessionToken` is allowed,
  else the admin token of the role the operation names (the strongest,
  `admin`, when it names none), and nothing for `security: []` (/metrics,
  the probes and the WeChat Pay notification, which signs instead).
- Real state to hit: in positive fuzzing cases, path parameters named
  `sale_id`, `id` (the admin routes' sale), `sku_id` and `order_id` are, as
  often as not, replaced by the sales, items and orders the Rust test
  seeded, and so is a JSON body's top-level `sale_id` (with its `sku_id`),
  so operations reach their 200s and 409s instead of only 400 and 404. The
  choice is drawn through Hypothesis: a fixed `--seed` keeps the run
  repeatable.
- Signatures: a positive case of an operation with a `Wechatpay-Signature`
  header (the WeChat Pay notification) is signed as WeChat Pay signs, by
  the test's signer over the exact body bytes, so the run reaches the
  envelope and resource checks behind the signature; negative cases keep
  their broken headers and test the signature check itself.

Everything comes from environment variables set by the Rust test; a
missing one fails the run at load time instead of testing without auth.
"""

import os

import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation


def _required(name):
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"{name} is not set: run this through tests/contract.rs")
    return value


def _list(name):
    return [item for item in _required(name).split(",") if item]


BUYER_TOKEN = _required("FG_CONTRACT_BUYER_TOKEN")
ADMIN_TOKENS = {
    "ops": _required("FG_CONTRACT_OPS_TOKEN"),
    "host": _required("FG_CONTRACT_HOST_TOKEN"),
    "admin": _required("FG_CONTRACT_ADMIN_TOKEN"),
}
SIGNER_URL = _required("FG_CONTRACT_SIGNER_URL")
SEEDED_IDS = {
    # The storefront's sales, kept live so orders can be placed...
    "sale_id": _list("FG_CONTRACT_SALE_IDS"),
    # ...apart from those the admin routes (`/admin/v1/sales/{id}/...`)
    # start, pause, end and restock.
    "id": _list("FG_CONTRACT_ADMIN_SALE_IDS"),
    "sku_id": _list("FG_CONTRACT_SKU_IDS"),
    "order_id": _list("FG_CONTRACT_ORDER_IDS"),
}


def _security(operation):
    """The operation's security requirements (the document's when it has none)."""
    raw = operation.definition.raw
    if "security" in raw:
        return raw["security"]
    return operation.schema.raw_schema.get("security", [])


def token_for(operation):
    """The bearer token the operation needs, or None for an open one."""
    schemes = {name for requirement in _security(operation) for name in requirement}
    if "sessionToken" in schemes:
        return BUYER_TOKEN
    if "adminToken" in schemes:
        role = operation.definition.raw.get("x-required-role", "admin")
        return ADMIN_TOKENS[role]
    return None


# No caching: the token depends on the operation, not on time.
@schemathesis.auth(refresh_interval=None)
class PerOperationBearer:
    def get(self, case, context):
        return token_for(context.operation)

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


def _positive_at(case, location):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return False
    return not meta.is_negative_at(location)


def _aim(values, seeded):
    """A strategy replacing each seeded name of `values` by a seeded id or not."""
    names = [name for name in values if name in seeded]
    choices = {name: st.none() | st.sampled_from(seeded[name]) for name in names}

    def apply(picks):
        for name, value in picks.items():
            if value is not None:
                values[name] = value

    return st.fixed_dictionaries(choices).map(apply)


def _aim_body(body):
    """A strategy replacing the body's `sale_id` (and `sku_id`, together,
    since an item only exists in its sale) by a seeded pair, or not."""
    if "sale_id" not in body:
        return st.just(None)
    pairs = [(sale, sku) for sale in SEEDED_IDS["sale_id"] for sku in SEEDED_IDS["sku_id"]]

    def apply(pair):
        if pair is not None:
            body["sale_id"] = pair[0]
            if "sku_id" in body:
                body["sku_id"] = pair[1]

    return (st.none() | st.sampled_from(pairs)).map(apply)


@schemathesis.hook
def flatmap_case(context, case):
    """About half of the positive cases aim at the seeded sales, items and
    orders: path parameters by name, and a JSON body's top-level `sale_id`
    and `sku_id` (so orders are placed, not only refused)."""
    parts = []
    if case.path_parameters and _positive_at(case, ParameterLocation.PATH):
        parts.append(_aim(case.path_parameters, SEEDED_IDS))
    if isinstance(case.body, dict) and _positive_at(case, ParameterLocation.BODY):
        parts.append(_aim_body(case.body))
    if not parts:
        return st.just(case)
    return st.tuples(*parts).map(lambda _: case)


def _signed_headers(operation):
    names = {parameter.name.lower() for parameter in operation.headers}
    return "wechatpay-signature" in names


@schemathesis.hook
def before_call(context, case, kwargs):
    """Signs the body of a positive case of a signed operation."""
    if not _signed_headers(case.operation) or not _positive_at(case, ParameterLocation.HEADER):
        return
    # The bytes requests will send, prepared the way it prepares them.
    sent = case.as_transport_kwargs()
    body = (
        requests.Request(sent["method"], sent["url"], json=sent.get("json"), data=sent.get("data"))
        .prepare()
        .body
        or b""
    )
    if isinstance(body, str):
        body = body.encode("utf-8")
    answer = requests.post(SIGNER_URL, data=body, timeout=10)
    answer.raise_for_status()
    case.headers = case.headers or {}
    case.headers.update(answer.json())
