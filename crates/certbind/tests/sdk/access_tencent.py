"""Access control through the official Tencent Cloud SDKs (ssl and clb, unmodified).

Phases (TC_PHASE), each printing a JSON object as its last line:
- refused:   a user whose policy allows clb:* / ssl:* on LB1 only is refused on LB2
             (ModifyListener) and on a one-click UpdateCertificateInstance whose listeners
             span LB1 and LB2, with AuthFailure.UnauthorizedOperation naming the action
             and the qcs:: resource; a second user with the same Allow plus a Deny on
             clb:ModifyListener is refused even on LB1.
- allowed:   the same user moves LB1's listener to NEW with ModifyListener, then a one-click
             update NEW -> THIRD (bound on LB1 only) goes through as a deploy record.
- isolation: a second account's key lists none of the first account's certificates or load
             balancers, and the first account's ids answer as not found.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tencent_common import call, clb, done, expect_error, ssl, update_instance, wait_record, wait_task  # noqa: E402

E = os.environ
PHASE = E["TC_PHASE"]
REGION = "ap-guangzhou"
LB1, LB2, L1, L2 = E.get("LB1"), E.get("LB2"), E.get("L1"), E.get("L2")


def clients(prefix):
    key, secret = E[prefix + "_KEY_ID"], E[prefix + "_SECRET"]
    return ssl(REGION, key=key, secret=secret), clb(REGION, key=key, secret=secret)


def modify(client, lb, listener, cert):
    return call(client, "ModifyListener", LoadBalancerId=lb, ListenerId=listener, Certificate={"CertId": cert})


def refusal(fn, action, lb):
    """The call must be refused as unauthorized, naming the action and the load balancer."""
    e = expect_error("AuthFailure.UnauthorizedOperation", fn)
    assert action in e.message, e.message
    assert "qcs::clb:" in e.message and (":clb/" + lb) in e.message, e.message
    return e.message


def refused():
    user_ssl, user_clb = clients("USER")
    _, deny_clb = clients("DENY")
    old, new = E["OLD"], E["NEW"]
    bulk = refusal(
        lambda: call(user_ssl, "UpdateCertificateInstance", OldCertificateId=old, CertificateId=new, ResourceTypes=["clb"]),
        "ssl:UpdateCertificateInstance",
        LB2,
    )
    # No deploy record was created for the refused update.
    records = call(user_ssl, "DescribeHostUpdateRecord", OldCertificateId=old)
    assert records["TotalCount"] == 0, records
    other_lb = refusal(lambda: modify(user_clb, LB2, L2, new), "clb:ModifyListener", LB2)
    denied = refusal(lambda: modify(deny_clb, LB1, L1, new), "clb:ModifyListener", LB1)
    # Reads of the allowed load balancer still work; of the other one they do not.
    listeners = call(user_clb, "DescribeListeners", LoadBalancerId=LB1)["Listeners"]
    assert [x["Certificate"]["CertId"] for x in listeners] == [old], listeners
    refusal(lambda: call(user_clb, "DescribeListeners", LoadBalancerId=LB2), "clb:DescribeListeners", LB2)
    return {"bulk": bulk, "other_lb": other_lb, "denied": denied}


def allowed():
    user_ssl, user_clb = clients("USER")
    new, third = E["NEW"], E["THIRD"]
    answer = modify(user_clb, LB1, L1, new)
    wait_task(user_clb, answer["RequestId"])
    listeners = call(user_clb, "DescribeListeners", LoadBalancerId=LB1)["Listeners"]
    assert [x["Certificate"]["CertId"] for x in listeners] == [new], listeners
    # NEW is bound on LB1 only now: a one-click update of it is within the policy.
    record = update_instance(user_ssl, OldCertificateId=new, CertificateId=third, ResourceTypes=["clb"])["DeployRecordId"]
    detail = wait_record(user_ssl, record)
    assert detail["SuccessTotalCount"] == 1 and detail["FailedTotalCount"] == 0, detail
    return {"record": record}


def isolation():
    root_ssl, root_clb = ssl(REGION), clb(REGION)
    other_ssl, other_clb = clients("OTHER")
    cert, other_cert = E["CERT"], E["OTHER_CERT"]

    def cert_ids(client, **fields):
        return {c["CertificateId"] for c in call(client, "DescribeCertificates", Limit=100, **fields)["Certificates"]}

    def lb_ids(client, **fields):
        return {x["LoadBalancerId"] for x in call(client, "DescribeLoadBalancers", Limit=100, **fields)["LoadBalancerSet"]}

    assert cert in cert_ids(root_ssl) and lb_ids(root_clb) >= {LB1}, "the first account sees its own objects"
    seen = cert_ids(other_ssl)
    assert cert not in seen and other_cert in seen, seen
    assert cert not in cert_ids(other_ssl, SearchKey=cert)
    seen_lbs = lb_ids(other_clb)
    assert LB1 not in seen_lbs and E["OTHER_LB"] in seen_lbs, seen_lbs
    assert lb_ids(other_clb, LoadBalancerIds=[LB1]) == set()
    codes = {
        "certificate_detail": expect_error(
            "FailedOperation.CertificateNotFound",
            lambda: call(other_ssl, "DescribeCertificateDetail", CertificateId=cert),
        ).code,
        "update_instance": expect_error(
            "FailedOperation.CertificateNotFound",
            lambda: call(
                other_ssl,
                "UpdateCertificateInstance",
                OldCertificateId=cert,
                CertificateId=other_cert,
                ResourceTypes=["clb"],
            ),
        ).code,
        "listeners": expect_error(
            "ResourceNotFound", lambda: call(other_clb, "DescribeListeners", LoadBalancerId=LB1)
        ).code,
        "modify_listener": expect_error("ResourceNotFound", lambda: modify(other_clb, LB1, L1, other_cert)).code,
    }
    return codes


done({"refused": refused, "allowed": allowed, "isolation": isolation}[PHASE]())
