"""Access control through the official UCloud SDK (ucloud-sdk-python3, unmodified).

Phases (UC_PHASE), each printing a JSON object as its last line:
- refused:   a user whose policy allows ulb:* on ULB1 only is refused (RetCode 4062, the
             action and the ucs: resource in the message) on ULB2 and its VServer, and on
             a project-wide UpdateSSLBinding that would touch both ULBs.
- allowed:   the same user's UpdateSSLBinding scoped to ULB1 goes through.
- isolation: a second account's key lists none of the first account's SSLs or ULBs, and
             the first account's ids answer as not found (4021 / 4022).
"""

import json
import os

from ucloud.client import Client
from ucloud.core.exc import RetCodeException

for _k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_k, None)

E = os.environ
PHASE = E["UC_PHASE"]
FORBIDDEN = 4062
SSL_NOT_FOUND = 4021
ULB_NOT_FOUND = 4022


def ulb(prefix=None):
    key = E[prefix + "_KEY_ID"] if prefix else E["CERTBIND_ACCESS_KEY_ID"]
    secret = E[prefix + "_SECRET"] if prefix else E["CERTBIND_ACCESS_KEY_SECRET"]
    return Client(
        {
            "region": "cn-bj2",
            # The SDK requires a ProjectId: each account's default project is "default".
            "project_id": "default",
            "public_key": key,
            "private_key": secret,
            "base_url": E["CERTBIND_ENDPOINT"],
        }
    ).ulb()


def expect_code(code, fn):
    try:
        value = fn()
    except RetCodeException as e:
        assert e.code == code, "expected RetCode %s, got %s: %s" % (code, e.code, e.message)
        return e.message
    raise AssertionError("expected RetCode %s, got success: %r" % (code, value))


def refused():
    user = ulb("USER")
    a, b = E["SSL_A"], E["SSL_B"]
    ulb2, vs2 = E["ULB2"], E["VS2"]
    messages = {
        "project_wide": expect_code(FORBIDDEN, lambda: user.update_ssl_binding({"OldSSLId": a, "NewSSLId": b})),
        "other_ulb": expect_code(
            FORBIDDEN, lambda: user.update_ssl_binding({"OldSSLId": a, "NewSSLId": b, "LoadBalancerId": ulb2})
        ),
        "other_vserver": expect_code(
            FORBIDDEN, lambda: user.update_ssl_binding({"OldSSLId": a, "NewSSLId": b, "ListenerId": vs2})
        ),
        "describe_other": expect_code(FORBIDDEN, lambda: user.describe_ulb({"ULBId": ulb2})),
    }
    for name, message in messages.items():
        assert "ucs:ulb:" in message and ":ulb/" + ulb2 in message, (name, message)
    assert "ulb:UpdateSSLBinding" in messages["project_wide"], messages
    assert "ulb:DescribeULB" in messages["describe_other"], messages
    return messages


def allowed():
    user = ulb("USER")
    user.update_ssl_binding({"OldSSLId": E["SSL_A"], "NewSSLId": E["SSL_B"], "LoadBalancerId": E["ULB1"]})
    vservers = user.describe_ulb({"ULBId": E["ULB1"]})["DataSet"][0]["VServerSet"]
    assert [[s["SSLId"] for s in v["SSLSet"]] for v in vservers] == [[E["SSL_B"]]], vservers
    return {"ok": True}


def isolation():
    root, other = ulb(), ulb("OTHER")
    ssl_a, ulb1 = E["SSL_A"], E["ULB1"]
    assert ssl_a in [s["SSLId"] for s in root.describe_ssl()["DataSet"]]
    assert ulb1 in [x["ULBId"] for x in root.describe_ulb()["DataSet"]]
    seen_ssl = [s["SSLId"] for s in other.describe_ssl()["DataSet"]]
    assert ssl_a not in seen_ssl and E["OTHER_SSL"] in seen_ssl, seen_ssl
    seen_ulb = [x["ULBId"] for x in other.describe_ulb()["DataSet"]]
    assert ulb1 not in seen_ulb and E["OTHER_ULB"] in seen_ulb, seen_ulb
    return {
        "describe_ssl": expect_code(SSL_NOT_FOUND, lambda: other.describe_ssl({"SSLId": ssl_a})),
        "describe_ulb": expect_code(ULB_NOT_FOUND, lambda: other.describe_ulb({"ULBId": ulb1})),
        "describe_vserver": expect_code(ULB_NOT_FOUND, lambda: other.describe_vserver({"ULBId": ulb1})),
        "update_ssl_binding": expect_code(
            SSL_NOT_FOUND, lambda: other.update_ssl_binding({"OldSSLId": ssl_a, "NewSSLId": E["OTHER_SSL"]})
        ),
    }


print(json.dumps({"refused": refused, "allowed": allowed, "isolation": isolation}[PHASE]()))
