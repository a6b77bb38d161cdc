"""Signed requests for the replay test (tests/replay.rs), made through the official SDKs,
unmodified, against a recording proxy (CERTBIND_ENDPOINT) in front of certbind: the
proxy keeps each request's bytes, and the Rust test sends them again, before and after a
restart. One call per label, in order; the last line lists the labels.

- alibaba-acs3, alibaba-rpc: ALB CreateLoadBalancer, signed with ACS3 and with RPC v2
- tencent-tc3: CLB CreateLoadBalancer (TC3)
- tencent-legacy: SSL DescribeCertificates (legacy HmacSHA256: a nonce of its own)
- tencent-read: SSL DescribeCertificateDetail (TC3) of a certificate uploaded first
  (CERT, KEY: the "setup" call), which the Rust test re-sends naming DeleteCertificate
- ucloud: ULB CreateULB (no time in its signature)
"""

import json
import os

from aliyun_common import alb, clients
from tencent_common import call, clb, ssl
from ucloud_common import ulb as ucloud_ulb

E = os.environ
labels = []


def alb_create(client, name):
    client.create_load_balancer(alb.CreateLoadBalancerRequest(
        load_balancer_name=name, vpc_id="vpc-test", address_type="Internet", load_balancer_edition="Standard",
        load_balancer_billing_config=alb.CreateLoadBalancerRequestLoadBalancerBillingConfig(pay_type="PostPay"),
        zone_mappings=[alb.CreateLoadBalancerRequestZoneMappings(v_switch_id="vsw-1", zone_id="cn-hangzhou-a")],
    ))


tc_cert = call(ssl(), "UploadCertificate", CertificatePublicKey=E["CERT"], CertificatePrivateKey=E["KEY"])
labels.append("setup")

alb3, _, _ = clients()
alb2, _, _ = clients(v2=True)
alb_create(alb3, "acs3")
labels.append("alibaba-acs3")
alb_create(alb2, "rpc")
labels.append("alibaba-rpc")

call(clb(), "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="tc3")
labels.append("tencent-tc3")
call(ssl(sign="HmacSHA256"), "DescribeCertificates")
labels.append("tencent-legacy")
call(ssl(), "DescribeCertificateDetail", CertificateId=tc_cert["CertificateId"])
labels.append("tencent-read")

ulb = ucloud_ulb()
ulb.create_ulb({"ULBName": "ucloud"})
labels.append("ucloud")
# A read asked again is served again: only writes are refused as replays.
first = ulb.describe_ulb({})
again = ulb.describe_ulb({})
assert first["TotalCount"] == again["TotalCount"], (first, again)

print(json.dumps({"labels": labels}))
