"""Access control through the official ALB SDK: a user whose policy (in Alibaba's own
vocabulary) allows alb:* on one load balancer associates there and is refused on the
other with Forbidden.LoadBalancer, the denied action and resource in the message."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from aliyun_common import alb, clients, expect_error  # noqa: E402

USER_KEY = os.environ["USER_KEY_ID"]
USER_SECRET = os.environ["USER_SECRET"]
ALLOWED_LISTENER = os.environ["ALLOWED_LISTENER"]
DENIED_LISTENER = os.environ["DENIED_LISTENER"]
CERT = os.environ["CERT_ID"]

user_alb, _, _ = clients(key_id=USER_KEY, secret=USER_SECRET)


def associate(listener):
    return user_alb.associate_additional_certificates_with_listener(
        alb.AssociateAdditionalCertificatesWithListenerRequest(
            listener_id=listener,
            certificates=[alb.AssociateAdditionalCertificatesWithListenerRequestCertificates(certificate_id=CERT)],
        )
    )


allowed = associate(ALLOWED_LISTENER)
assert allowed.body.job_id, allowed.body
refused = expect_error(lambda: associate(DENIED_LISTENER), "Forbidden.LoadBalancer", 403)
assert "alb:AssociateAdditionalCertificatesWithListener" in refused["message"], refused
assert "acs:alb:" in refused["message"] and ":loadbalancer/alb-" in refused["message"], refused
print(json.dumps({"allowed_job": allowed.body.job_id, "refused": refused}))
