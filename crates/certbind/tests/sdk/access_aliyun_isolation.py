"""Tenant isolation through the official Alibaba Cloud SDKs (ALB and CAS, unmodified): a
second account's key lists none of the first account's certificates or load balancers, and
the first account's ids answer as not found."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from aliyun_common import alb, cas, clients, done, expect_error  # noqa: E402

E = os.environ
CERT = int(E["CERT_ID"])
LB = E["ALB_ID"]

root_alb, _, root_cas = clients()
other_alb, _, other_cas = clients(key_id=E["OTHER_KEY_ID"], secret=E["OTHER_SECRET"])


def cert_ids(client):
    request = cas.ListUserCertificateOrderRequest(order_type="UPLOAD", show_size=500)
    return {c.certificate_id for c in client.list_user_certificate_order(request).body.certificate_order_list}


def lb_ids(client, **kw):
    body = client.list_load_balancers(alb.ListLoadBalancersRequest(max_results=100, **kw)).body
    return {x.load_balancer_id for x in body.load_balancers}


assert CERT in cert_ids(root_cas) and LB in lb_ids(root_alb), "the first account sees its own objects"
seen = cert_ids(other_cas)
assert CERT not in seen and int(E["OTHER_CERT_ID"]) in seen, seen
seen_lbs = lb_ids(other_alb)
assert LB not in seen_lbs and E["OTHER_ALB_ID"] in seen_lbs, seen_lbs
assert lb_ids(other_alb, load_balancer_ids=[LB]) == set()
detail = expect_error(
    lambda: other_cas.get_user_certificate_detail(cas.GetUserCertificateDetailRequest(cert_id=CERT)),
    "ResourceNotFound.Certificate",
    404,
)
attribute = expect_error(
    lambda: other_alb.get_load_balancer_attribute(alb.GetLoadBalancerAttributeRequest(load_balancer_id=LB)),
    "ResourceNotFound.LoadBalancer",
    404,
)
done({"certificate": detail["code"], "load_balancer": attribute["code"]})
