"""A request body over certbind's 1 MiB limit, through each official SDK, unmodified:
each SDK must raise its own error with its dialect's code (not fail parsing a foreign
envelope), and nothing is made. Prints the codes seen."""

import json

from aliyun_common import clients, nlb
from alibabacloud_tea_openapi.exceptions import ClientException
from tencent_common import ssl
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.ssl.v20191205 import models as ssl_models
from ucloud_common import ulb as ucloud_ulb
from ucloud.core.exc import RetCodeException
import os

E = os.environ
HUGE = "A" * (1024 * 1024 + 4096)
seen = {}

for label, v2 in (("alibaba-acs3", False), ("alibaba-rpc", True)):
    _, nlb_client, _ = clients(v2=v2)
    try:
        nlb_client.create_load_balancer(nlb.CreateLoadBalancerRequest(
            load_balancer_name=HUGE, vpc_id="vpc-test", address_type="Internet", load_balancer_type="Network",
            zone_mappings=[nlb.CreateLoadBalancerRequestZoneMappings(v_switch_id="vsw-1", zone_id="cn-hangzhou-a")],
        ))
        raise AssertionError(label + ": an oversized request succeeded")
    except ClientException as e:
        seen[label] = [e.code, e.status_code]

request = ssl_models.UploadCertificateRequest()
request.from_json_string(json.dumps({"CertificatePublicKey": HUGE, "CertificatePrivateKey": "x"}))
try:
    ssl().UploadCertificate(request)
    raise AssertionError("tencent: an oversized request succeeded")
except TencentCloudSDKException as e:
    assert e.requestId, "no RequestId"
    seen["tencent"] = e.code

ulb = ucloud_ulb()
try:
    ulb.create_ssl({"SSLName": "huge", "UserCert": HUGE, "PrivateKey": "x"})
    raise AssertionError("ucloud: an oversized request succeeded")
except RetCodeException as e:
    seen["ucloud"] = [e.code, e.message]

print(json.dumps(seen))
