"""Shared helpers for the Alibaba Cloud conformance scripts: clients built exactly as a
user would build them (Config(endpoint="127.0.0.1:PORT", protocol="http")), error
assertions on what the SDK raises, and polling helpers."""

import json
import os
import time

for _k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_k, None)

from alibabacloud_tea_openapi import utils_models as open_api_models  # noqa: E402
from alibabacloud_tea_openapi.exceptions import (  # noqa: E402
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_alb20200616.client import Client as AlbClient  # noqa: E402
from alibabacloud_alb20200616 import models as alb  # noqa: E402
from alibabacloud_nlb20220430.client import Client as NlbClient  # noqa: E402
from alibabacloud_nlb20220430 import models as nlb  # noqa: E402
from alibabacloud_cas20200407.client import Client as CasClient  # noqa: E402
from alibabacloud_cas20200407 import models as cas  # noqa: E402

ENDPOINT = os.environ["CERTBIND_ENDPOINT"].split("://", 1)[-1]
KEY_ID = os.environ["CERTBIND_ACCESS_KEY_ID"]
SECRET = os.environ["CERTBIND_ACCESS_KEY_SECRET"]
REGION = "cn-hangzhou"


def config(v2=False, key_id=KEY_ID, secret=SECRET):
    cfg = open_api_models.Config(
        access_key_id=key_id,
        access_key_secret=secret,
        endpoint=ENDPOINT,
        protocol="http",
        region_id=REGION,
    )
    if v2:
        cfg.signature_algorithm = "v2"
    return cfg


def clients(v2=False, **kw):
    cfg = config(v2, **kw)
    return AlbClient(cfg), NlbClient(cfg), CasClient(cfg)


def expect_error(fn, code, status):
    """Calls fn, which must raise the SDK exception with this code and HTTP status."""
    try:
        fn()
    except (ClientException, ServerException, ThrottlingException) as e:
        got = {"code": e.code, "status": e.status_code, "message": e.message}
        assert e.code == code and e.status_code == status, f"expected {code}/{status}, got {got}"
        assert isinstance(e, ThrottlingException if status == 429 else ClientException if status < 500 else ServerException), type(e)
        assert e.request_id and e.request_id != "None", got
        return got
    raise AssertionError(f"expected {code}/{status}, but the call succeeded")


def wait_until(what, fn, timeout=20.0):
    """Polls fn (with a gentle backoff, to stay clear of the throttle) until it returns a
    truthy value; returns it."""
    start = time.time()
    delay = 0.02
    while True:
        value = fn()
        if value:
            return value
        if time.time() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def read_pem(name):
    base = os.environ["CERT_DIR"]
    with open(os.path.join(base, name + ".crt")) as f:
        cert = f.read()
    with open(os.path.join(base, name + ".key")) as f:
        key = f.read()
    return cert, key


def upload(cas_client, name, pem_name=None):
    cert, key = read_pem(pem_name or name)
    body = cas_client.upload_user_certificate(cas.UploadUserCertificateRequest(name=name, cert=cert, key=key)).body
    assert isinstance(body.cert_id, int), body.to_map()
    return body.cert_id


def done(result):
    print(json.dumps(result))
