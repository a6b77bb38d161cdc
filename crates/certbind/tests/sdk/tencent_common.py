"""Shared setup for the Tencent Cloud SDK conformance scripts: clients pointed at the
certbind under test, exactly as a user would configure the official SDK."""

import json
import os
import sys
import time

for _k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_k, None)

from tencentcloud.common import credential  # noqa: E402
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException  # noqa: E402
from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: E402
from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: E402
from tencentcloud.clb.v20180317 import clb_client, models as clb_models  # noqa: E402
from tencentcloud.ssl.v20191205 import ssl_client, models as ssl_models  # noqa: E402

ENDPOINT = os.environ["CERTBIND_ENDPOINT"].split("://", 1)[-1].rstrip("/")
KEY_ID = os.environ["CERTBIND_ACCESS_KEY_ID"]
SECRET = os.environ["CERTBIND_ACCESS_KEY_SECRET"]


def profile(method="POST", sign="TC3-HMAC-SHA256"):
    hp = HttpProfile(endpoint=ENDPOINT, protocol="http", reqMethod=method)
    return ClientProfile(httpProfile=hp, signMethod=sign)


def ssl(region="ap-guangzhou", method="POST", sign="TC3-HMAC-SHA256", key=KEY_ID, secret=SECRET):
    return ssl_client.SslClient(credential.Credential(key, secret), region, profile(method, sign))


def clb(region="ap-guangzhou", method="POST", sign="TC3-HMAC-SHA256", key=KEY_ID, secret=SECRET):
    return clb_client.ClbClient(credential.Credential(key, secret), region, profile(method, sign))


def call(client, action, **fields):
    """Calls `action` through the SDK's generated method and model; returns the response as a dict."""
    models = ssl_models if isinstance(client, ssl_client.SslClient) else clb_models
    request = getattr(models, action + "Request")()
    request.from_json_string(json.dumps(fields))
    response = getattr(client, action)(request)
    return json.loads(response.to_json_string())


def expect_error(code, fn):
    try:
        value = fn()
    except TencentCloudSDKException as e:
        assert e.code == code, "expected %s, got %s: %s" % (code, e.code, e.message)
        assert e.requestId, "error without RequestId"
        return e
    raise AssertionError("expected %s, got success: %r" % (code, value))


def wait_task(client, request_id, timeout=30):
    start = time.time()
    while True:
        status = call(client, "DescribeTaskStatus", TaskId=request_id)
        if status["Status"] == 0:
            return status
        assert status["Status"] == 2, status
        assert time.time() - start < timeout, "task %s did not finish" % request_id
        time.sleep(0.05)


def update_instance(client, **fields):
    """UpdateCertificateInstance, polled as the API describes: call again while DeployRecordId is 0."""
    start = time.time()
    while True:
        answer = call(client, "UpdateCertificateInstance", **fields)
        if answer["DeployRecordId"]:
            return answer
        assert time.time() - start < 30, answer
        time.sleep(0.2)


def wait_record(client, record, timeout=30):
    start = time.time()
    while True:
        detail = call(client, "DescribeHostUpdateRecordDetail", DeployRecordId=str(record), Limit="100")
        if detail["PendingTotalCount"] == 0 and detail["RunningTotalCount"] == 0:
            return detail
        assert time.time() - start < timeout, detail
        time.sleep(0.1)


def done(result):
    print(json.dumps(result))
    sys.exit(0)
