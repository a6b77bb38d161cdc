"""Signature and request-level checks through the official SDKs: both signature versions
accepted; a wrong secret, an unknown key, a tampered request, a replayed nonce and an old
timestamp refused; unknown actions and versions. MODE=throttle instead checks
Throttling.User and SystemBusy against a server started with tiny limits."""

import copy
import os

import requests
from darabonba.core import DaraCore
from darabonba.runtime import RuntimeOptions
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.utils import Utils

from aliyun_common import alb, cas, clients, config, done, expect_error, AlbClient, NlbClient, nlb

MODE = os.environ.get("MODE", "auth")

# Capture what the SDK sends (the SDK itself is not changed: this only records).
captured = []
_original_do_action = DaraCore.do_action


def _recording_do_action(request, runtime=None):
    captured.append(copy.deepcopy(request))
    return _original_do_action(request, runtime)


DaraCore.do_action = staticmethod(_recording_do_action)


def replay(request):
    """Sends a captured request again, byte for byte (same nonce, same signature)."""
    url = DaraCore.compose_url(request)
    response = requests.post(url, headers=request.headers, data=request.body, timeout=10)
    return response.status_code, response.json(), response.headers


def generic(client, action, version):
    params = open_api_models.Params(
        action=action, version=version, protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
    return client.call_api(params, open_api_models.OpenApiRequest(query={}), RuntimeOptions())


def auth_mode():
    results = {}
    alb3, nlb3, cas3 = clients()
    alb2, nlb2, cas2 = clients(v2=True)
    # Both signatures are accepted.
    for name, client in (("alb_acs3", alb3), ("alb_v2", alb2)):
        body = client.list_load_balancers(alb.ListLoadBalancersRequest()).body
        assert body.request_id and body.total_count is not None, body.to_map()
        results[name] = "ok"
    nlb2.list_load_balancers(nlb.ListLoadBalancersRequest())
    cas2.list_user_certificate_order(cas.ListUserCertificateOrderRequest())

    for v2 in (False, True):
        tag = "v2" if v2 else "acs3"
        wrong = AlbClient(config(v2, secret="not-the-secret"))
        results[f"wrong_secret_{tag}"] = expect_error(
            lambda: wrong.list_load_balancers(alb.ListLoadBalancersRequest()), "SignatureDoesNotMatch", 400)
        unknown = NlbClient(config(v2, key_id="LTAIunknownKEY", secret="whatever"))
        results[f"unknown_key_{tag}"] = expect_error(
            lambda: unknown.list_load_balancers(nlb.ListLoadBalancersRequest()), "InvalidAccessKeyId.NotFound", 404)
        for m in ("wrong_secret", "unknown_key"):
            assert "not-the-secret" not in str(results[f"{m}_{tag}"])

        # Replay: the very same request a second time.
        client = alb2 if v2 else alb3
        captured.clear()
        client.list_listeners(alb.ListListenersRequest(max_results=5))
        sent = captured[-1]
        status, body, _ = replay(sent)
        assert (status, body["Code"]) == (400, "SignatureNonceUsed"), (status, body)
        results[f"replay_{tag}"] = body["Code"]

        # Tampered: change a signed parameter after signing (fresh nonce so only the
        # signature can fail).
        tampered = copy.deepcopy(sent)
        tampered.query["MaxResults"] = "6"
        if v2:
            tampered.query["SignatureNonce"] = "fresh-" + tampered.query["SignatureNonce"]
        else:
            tampered.headers["x-acs-signature-nonce"] = "fresh" + tampered.headers["x-acs-signature-nonce"]
        status, body, _ = replay(tampered)
        assert (status, body["Code"]) == (400, "SignatureDoesNotMatch"), (status, body)
        assert set(body) >= {"RequestId", "HostId", "Code", "Message", "Recommend"}, body
        results[f"tampered_{tag}"] = body["Code"]

    # Old timestamps are refused (the SDK's clock is moved back 20 minutes).
    original = Utils.get_timestamp
    try:
        import datetime
        Utils.get_timestamp = staticmethod(lambda: (datetime.datetime.utcnow() - datetime.timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        for v2, client in ((False, alb3), (True, alb2)):
            results["expired_" + ("v2" if v2 else "acs3")] = expect_error(
                lambda: client.list_load_balancers(alb.ListLoadBalancersRequest()), "InvalidTimeStamp.Expired", 400)
    finally:
        Utils.get_timestamp = original

    # Malformed requests get the envelope too.
    url = "http://" + os.environ["CERTBIND_ENDPOINT"].split("://", 1)[-1] + "/"
    for name, headers, code in (
        ("unsigned", {"x-acs-action": "ListListeners", "x-acs-version": "2020-06-16"}, "MissingParam.Signature"),
        ("garbled", {"x-acs-action": "ListListeners", "x-acs-version": "2020-06-16",
                     "authorization": "ACS3-HMAC-SHA256 nonsense"}, "IncompleteSignature"),
        ("unsigned_action", {"x-acs-action": "ListListeners", "x-acs-version": "2020-06-16",
                             "authorization": "ACS3-HMAC-SHA256 Credential=x,SignedHeaders=host,Signature=00"},
         "IncompleteSignature"),
    ):
        response = requests.post(url, headers=headers, data=b"\xff\xfe", timeout=10)
        body = response.json()
        assert response.status_code == 400 and body["Code"] == code, (name, response.status_code, body)
        assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}, body
        results[name] = code

    results["invalid_action"] = expect_error(lambda: generic(alb3, "NoSuchAction", "2020-06-16"), "InvalidAction.NotFound", 404)
    results["invalid_action_v2"] = expect_error(lambda: generic(nlb2, "DissociateAdditionalCertificatesFromListener", "2022-04-30"),
                                                "InvalidAction.NotFound", 404)
    results["invalid_version"] = expect_error(lambda: generic(alb3, "ListListeners", "2099-01-01"), "InvalidVersion", 400)
    done(results)


def throttle_mode():
    alb3, _, _ = clients()
    results = {}
    # The server runs with CERTBIND_ALIYUN_MAX_IN_FLIGHT=0: every admitted request is
    # refused as SystemBusy; with CERTBIND_ALIYUN_THROTTLE=3/60 the fourth is throttled.
    for _ in range(3):
        results["busy"] = expect_error(lambda: alb3.list_asyn_jobs(alb.ListAsynJobsRequest()), "SystemBusy", 400)
    results["throttled"] = expect_error(lambda: alb3.list_asyn_jobs(alb.ListAsynJobsRequest()), "Throttling.User", 429)
    try:
        alb3.list_asyn_jobs(alb.ListAsynJobsRequest())
    except Exception as e:  # noqa: BLE001
        assert e.__class__.__name__ == "ThrottlingException" and e.retry_after > 0, e
        results["retry_after_ms"] = e.retry_after
    # Throttling is per action: another action is still admitted (and refused as busy).
    results["other_action"] = expect_error(lambda: alb3.list_listeners(alb.ListListenersRequest()), "SystemBusy", 400)
    done(results)


auth_mode() if MODE == "auth" else throttle_mode()
