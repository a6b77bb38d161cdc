"""Every dialect path that takes a private key, through the official SDKs, unmodified:
Alibaba CAS UploadUserCertificate (ACS3 and RPC v2 signing), Tencent UploadCertificate
(TC3) and UpdateCertificateInstance with a PEM pair (legacy HmacSHA256 signing, so the key
travels in a form body), UCloud CreateSSL in both its forms. Each response is printed on
a line of its own, so the Rust test (tests/secrets_at_rest.rs) can look for key bytes in
what came back; the last line is the ids made.

Inputs: PEM pairs as <NAME>_CERT / <NAME>_KEY for CAS3, CAS2, TC_OLD, TC_NEW, UC1, UC2;
CHAIN; the port for the Tencent HTTPS listener (PORT); the account's default project
(UCLOUD_PROJECT).
"""

import json
import os

from aliyun_common import cas, clients
from tencent_common import call, clb, ssl as tc_ssl, update_instance, wait_task
from ucloud_common import ulb as ucloud_ulb

E = os.environ


def show(value):
    print(json.dumps(value, default=str))
    return value


ids = {}
_alb3, _nlb3, cas3 = clients()
_alb2, _nlb2, cas2 = clients(v2=True)
for name, client in (("CAS3", cas3), ("CAS2", cas2)):
    body = client.upload_user_certificate(
        cas.UploadUserCertificateRequest(name=name.lower(), cert=E[name + "_CERT"], key=E[name + "_KEY"])
    ).body
    ids[name] = show(body.to_map())["CertId"]

s = tc_ssl()
old = show(call(s, "UploadCertificate", CertificatePublicKey=E["TC_OLD_CERT"] + E["CHAIN"],
                CertificatePrivateKey=E["TC_OLD_KEY"], Alias="tc-old"))["CertificateId"]
gz = clb()
lb = show(call(gz, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="keys"))["LoadBalancerIds"][0]
created = show(call(gz, "CreateListener", LoadBalancerId=lb, Ports=[int(E["PORT"])], Protocol="HTTPS",
                    Certificate={"SSLMode": "UNIDIRECTIONAL", "CertId": old}))
wait_task(gz, created["RequestId"])
legacy = tc_ssl(sign="HmacSHA256")
answer = show(update_instance(legacy, OldCertificateId=old, ResourceTypes=["clb"],
                              CertificatePublicKey=E["TC_NEW_CERT"] + E["CHAIN"],
                              CertificatePrivateKey=E["TC_NEW_KEY"]))
ids["TC_OLD"] = old
ids["TC_DEPLOY"] = answer["DeployRecordId"]

ulb = ucloud_ulb()
ids["UC1"] = show(ulb.create_ssl({"SSLName": "uc1", "UserCert": E["UC1_CERT"], "PrivateKey": E["UC1_KEY"],
                                  "CaCert": E["CHAIN"]}))["SSLId"]
ids["UC2"] = show(ulb.create_ssl({"SSLName": "uc2", "SSLContent": E["UC2_CERT"] + E["UC2_KEY"]}))["SSLId"]

print(json.dumps(ids))
