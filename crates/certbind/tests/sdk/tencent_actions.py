"""Every Tencent action and error code the issue lists, through the official SDKs."""

import datetime
import hashlib
import hmac
import os
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import requests

from tencent_common import (ENDPOINT, KEY_ID, SECRET, TencentCloudSDKException, call, clb, done, expect_error, ssl,
                            update_instance, wait_record, wait_task)

E = os.environ
s = ssl()
c = clb()
codes = []


def err(code, fn):
    expect_error(code, fn)
    codes.append(code)


# ---- signatures ----
err("AuthFailure.SecretIdNotFound", lambda: call(ssl(key="AKIDdoesnotexist"), "DescribeCertificates"))
err("AuthFailure.SignatureFailure", lambda: call(ssl(secret="not-the-secret"), "DescribeCertificates"))
with mock.patch("time.time", return_value=time.time() - 900):
    err("AuthFailure.SignatureExpire", lambda: call(ssl(), "DescribeCertificates"))
raw = requests.post("http://" + ENDPOINT + "/", data="{}", headers={
    "Content-Type": "application/json", "X-TC-Action": "DescribeCertificates", "X-TC-Version": "2019-12-05",
    "X-TC-Timestamp": str(int(time.time())), "Authorization": "Basic Zm9vOmJhcg=="})
assert raw.status_code == 200 and raw.headers["Content-Type"] == "application/json", raw.headers
assert raw.json()["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization", raw.text
codes.append("AuthFailure.InvalidAuthorization")


def tc3_raw(body, version="2019-12-05", service="ssl"):
    """A correctly signed TC3 POST with an arbitrary body (what no SDK would send)."""
    ts = int(time.time())
    date = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")
    canonical = "\n".join(["POST", "/", "", "content-type:application/json\nhost:%s\n" % ENDPOINT,
                           "content-type;host", hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(ts), "%s/%s/tc3_request" % (date, service),
                         hashlib.sha256(canonical.encode()).hexdigest()])
    h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()  # noqa: E731
    key = h(h(h(("TC3" + SECRET).encode(), date), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    response = requests.post("http://" + ENDPOINT + "/", data=body, headers={
        "Content-Type": "application/json", "X-TC-Action": "DescribeCertificates", "X-TC-Version": version,
        "X-TC-Timestamp": str(ts), "Authorization": "TC3-HMAC-SHA256 Credential=%s/%s/%s/tc3_request, "
        "SignedHeaders=content-type;host, Signature=%s" % (KEY_ID, date, service, signature)})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json", response
    return response.json()["Response"]


assert "TotalCount" in tc3_raw(b"{}")
for body in [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"Limit": {"x": 1}}', b'{"CertIds": "abc"}']:
    assert tc3_raw(body)["Error"]["Code"] == "InvalidParameter", body
assert tc3_raw(b"{}", version="2099-01-01")["Error"]["Code"] == "InvalidAction"
# The legacy signatures, over POST and GET.
assert "TotalCount" in call(ssl(sign="HmacSHA256"), "DescribeCertificates")
assert "TotalCount" in call(ssl(sign="HmacSHA1", method="GET"), "DescribeCertificates")
err("AuthFailure.SignatureFailure", lambda: call(ssl(sign="HmacSHA1", secret="nope"), "DescribeCertificates"))

# ---- common errors ----
err("InvalidAction", lambda: s.call_json("NoSuchAction", {}))
err("MissingParameter", lambda: call(s, "DescribeCertificateDetail"))
err("InvalidParameter", lambda: call(s, "DescribeCertificates", Limit="many"))
err("InvalidParameterValue", lambda: call(s, "DescribeCertificates", ExpirationSort="SIDEWAYS"))
err("UnknownParameter", lambda: s.call_json("DescribeCertificates", {"Bogus": 1}))
err("ResourceNotFound", lambda: call(c, "DescribeListeners", LoadBalancerId="lb-zzzzzzzz"))
err("FailedOperation.CertificateNotFound", lambda: call(s, "DescribeCertificateDetail", CertificateId="zzzzzzzz"))

# ---- SSL certificates ----
a = call(s, "UploadCertificate", CertificatePublicKey=E["A_CERT"], CertificatePrivateKey=E["A_KEY"], Alias="alpha",
         ProjectId=5, Tags=[{"TagKey": "env", "TagValue": "test"}])["CertificateId"]
again = call(s, "UploadCertificate", CertificatePublicKey=E["A_CERT"], CertificatePrivateKey=E["A_KEY"],
             Repeatable=False)
assert again["RepeatCertId"] == a, again
b = call(s, "UploadCertificate", CertificatePublicKey=E["B_CERT"], CertificatePrivateKey=E["B_KEY"],
         Alias="bravo")["CertificateId"]
assert len(a) == 8 and len(b) == 8 and a != b
err("FailedOperation.CertificateMatchError",
    lambda: call(s, "UploadCertificate", CertificatePublicKey=E["C_CERT"], CertificatePrivateKey=E["A_KEY"]))
err("FailedOperation.CertificateParseError",
    lambda: call(s, "UploadCertificate", CertificatePublicKey="not a pem", CertificatePrivateKey=E["A_KEY"]))
found = call(s, "DescribeCertificates", SearchKey="alpha")
assert [x["CertificateId"] for x in found["Certificates"]] == [a], found
assert call(s, "DescribeCertificates", SearchKey=b)["Certificates"][0]["Alias"] == "bravo"
by_id = call(s, "DescribeCertificates", CertIds=[a, b], ExpirationSort="ASC", Limit=1, Offset=1)
assert by_id["TotalCount"] == 2 and len(by_id["Certificates"]) == 1, by_id
assert call(s, "DescribeCertificates", FilterExpiring=1)["TotalCount"] == 0
listed = call(s, "DescribeCertificates", CertIds=[a])["Certificates"][0]
assert listed["ProjectId"] == "5" and listed["Tags"][0]["TagKey"] == "env" and listed["From"] == "upload", listed
assert listed["Domain"] == "alpha.example.com" and "alpha.example.com" in listed["SubjectAltName"], listed
detail = call(s, "DescribeCertificateDetail", CertificateId=a)
assert detail["CertificatePrivateKey"] is None, "private key shown without AllowDownload"
assert "BEGIN CERTIFICATE" in detail["CertificatePublicKey"] and detail["CertFingerprint"], detail

# ---- CLB ----
lb = call(c, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="actions")["LoadBalancerIds"][0]
assert call(c, "DescribeLoadBalancers", LoadBalancerIds=[lb])["LoadBalancerSet"][0]["LoadBalancerName"] == "actions"
made = call(c, "CreateListener", LoadBalancerId=lb, Ports=[int(E["PORT1"])], Protocol="HTTPS",
            MultiCertInfo={"SSLMode": "UNIDIRECTIONAL", "CertList": [{"CertId": a}, {"CertId": b}]})
l1 = made["ListenerIds"][0]
wait_task(c, made["RequestId"])
got = call(c, "DescribeListeners", LoadBalancerId=lb, ListenerIds=[l1])["Listeners"][0]
assert got["Certificate"]["CertId"] == a and got["Certificate"]["ExtCertIds"] == [b], got
modified = call(c, "ModifyListener", LoadBalancerId=lb, ListenerId=l1, Certificate={"CertId": b})
wait_task(c, modified["RequestId"])
got = call(c, "DescribeListeners", LoadBalancerId=lb, Protocol="HTTPS")["Listeners"][0]
assert got["Certificate"]["CertId"] == b and got["Certificate"]["ExtCertIds"] == [], got
renamed = call(c, "ModifyListener", LoadBalancerId=lb, ListenerId=l1, ListenerName="renamed")
assert call(c, "DescribeTaskStatus", TaskId=renamed["RequestId"])["Status"] == 0
made = call(c, "CreateListener", LoadBalancerId=lb, Ports=[int(E["PORT2"])], Protocol="TCP_SSL",
            Certificate={"CertName": "bee", "CertContent": E["B_CERT"], "CertKey": E["B_KEY"]})
l2 = made["ListenerIds"][0]
wait_task(c, made["RequestId"])
got = call(c, "DescribeListeners", LoadBalancerId=lb, Port=int(E["PORT2"]))
assert got["TotalCount"] == 1 and got["Listeners"][0]["Certificate"]["CertId"] == b, got
assert call(c, "DescribeListeners", LoadBalancerId=lb)["TotalCount"] == 2
by_cert = call(c, "DescribeLoadBalancerListByCertId", CertIds=[b])["CertSet"][0]
assert [x["LoadBalancerId"] for x in by_cert["LoadBalancers"]] == [lb], by_cert
err("FailedOperation.BoundResources", lambda: call(s, "DeleteCertificate", CertificateId=b))

# ---- UpdateCertificateInstance errors ----
base = {"OldCertificateId": b, "ResourceTypes": ["clb"]}
err("FailedOperation.CertificateHostResourceTypeInvalid",
    lambda: call(s, "UpdateCertificateInstance", OldCertificateId=b, ResourceTypes=["clb", "cdn"], CertificateId=a))
err("MissingParameter", lambda: call(s, "UpdateCertificateInstance", **base))
err("FailedOperation.CertificateMatchError", lambda: call(
    s, "UpdateCertificateInstance", CertificatePublicKey=E["C_CERT"], CertificatePrivateKey=E["A_KEY"], **base))
err("FailedOperation.CertificateParseError", lambda: call(
    s, "UpdateCertificateInstance", CertificatePublicKey="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    CertificatePrivateKey=E["A_KEY"], **base))
err("InvalidParameterValue.IntermediateCertNotSame", lambda: call(
    s, "UpdateCertificateInstance", CertificatePublicKey=E["CHAIN_LEAF"] + E["CHAIN_WRONG"],
    CertificatePrivateKey=E["CHAIN_KEY"], **base))
err("FailedOperation.CertificateExists", lambda: call(
    s, "UpdateCertificateInstance", CertificatePublicKey=E["A_CERT"], CertificatePrivateKey=E["A_KEY"],
    Repeatable=False, **base))
err("FailedOperation.CertificateDeployInstanceEmpty",
    lambda: call(s, "UpdateCertificateInstance", OldCertificateId=a, ResourceTypes=["clb"], CertificateId=b))
# The seed's polling contract: 0 while the task is being created, then its id.
first = call(s, "UpdateCertificateInstance", CertificateId=a, **base)
assert first["DeployRecordId"] == 0, first
assert first["UpdateSyncProgress"][0]["UpdateSyncProgressRegions"][0]["TotalCount"] == 2, first
err("FailedOperation.CertificateDeployHasPendingRecord", lambda: call(
    s, "UpdateCertificateInstance", CertificatePublicKey=E["E_CERT"], CertificatePrivateKey=E["E_KEY"], **base))
second = update_instance(s, CertificateId=a, **base)
assert second["DeployStatus"] == 1 and second["DeployRecordId"] > 0, second
record = second["DeployRecordId"]
detail = wait_record(s, record)
assert detail["SuccessTotalCount"] == 2 and detail["RecordDetailList"][0]["TotalCount"] == 2, detail
assert sorted(i["ListenerId"] for i in detail["RecordDetailList"][0]["List"]) == sorted([l1, l2]), detail
assert call(s, "DescribeHostUpdateRecord", CertificateId=a)["DeployRecordList"][0]["Id"] == record
err("FailedOperation.CertificateDeployRetryStatusInvalid",
    lambda: call(s, "UpdateCertificateRecordRetry", DeployRecordId=record))
err("FailedOperation.CertificateDeployNotExist",
    lambda: call(s, "UpdateCertificateRecordRetry", DeployRecordId=987654))
err("FailedOperation.CertificateDeployNotExist",
    lambda: call(s, "DescribeHostUpdateRecordDetail", DeployRecordId="987654"))
rolled = call(s, "UpdateCertificateRecordRollback", DeployRecordId=record)["DeployRecordId"]
assert wait_record(s, rolled)["SuccessTotalCount"] == 2
err("FailedOperation.CertificateDeployRollbackStatusInvalid",
    lambda: call(s, "UpdateCertificateRecordRollback", DeployRecordId=record))

# ---- throttling: 10 per second per account ----
time.sleep(1.1)


def burst_call(_):
    try:
        call(ssl(), "UpdateCertificateInstance", OldCertificateId="zzzzzzzz", ResourceTypes=["clb"], CertificateId=a)
    except TencentCloudSDKException as e:
        assert e.code in ("LimitExceeded.RateLimitExceeded", "FailedOperation.CertificateNotFound"), e
        return e.code
    raise AssertionError("an unknown old certificate was accepted")


with ThreadPoolExecutor(max_workers=20) as pool:
    outcomes = list(pool.map(burst_call, range(20)))
assert outcomes.count("LimitExceeded.RateLimitExceeded") >= 1, outcomes
assert outcomes.count("FailedOperation.CertificateNotFound") >= 1, outcomes
codes.append("LimitExceeded.RateLimitExceeded")
time.sleep(1.1)

# ---- deletes ----
call(c, "DeleteListener", LoadBalancerId=lb, ListenerId=l1)
assert call(c, "DescribeListeners", LoadBalancerId=lb)["TotalCount"] == 1
call(c, "DeleteLoadBalancer", LoadBalancerIds=[lb])
err("ResourceNotFound", lambda: call(c, "DescribeListeners", LoadBalancerId=lb))
assert call(s, "DeleteCertificate", CertificateId=b)["DeleteResult"] is True
err("FailedOperation.CertificateNotFound", lambda: call(s, "DescribeCertificateDetail", CertificateId=b))

done({"codes": sorted(set(codes)), "listeners": [l1, l2]})
