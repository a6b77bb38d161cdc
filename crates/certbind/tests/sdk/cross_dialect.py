"""One system behind all dialects (GUIDE section 4), driven through the official SDKs,
unmodified, against one certbind: a certificate uploaded through Tencent SSL is found
through Alibaba CAS and UCloud, bound through the Alibaba ALB and UCloud ULB APIs, rotated
(to a certificate uploaded through UCloud) through Tencent's one-click update, retired
through CAS; errors about objects made in one dialect come back in another's envelope.

Phases (CROSS_PHASE), each printing a JSON object as its last line; the Rust test
(tests/cross_dialect.rs) handshakes with both listeners between them and checks every id
against the core one through the native API:
- setup:  upload V1 (Tencent), find it (CAS, UCloud), ALB + HTTPS listener and ULB +
          HTTPS VServer with V1
- rotate: upload V2 (UCloud), find its Tencent id, UpdateCertificateInstance V1 -> V2
          polled as the API document says, and the deploy record's details
- after:  V2 Associated / bound as the Alibaba and UCloud APIs show it; cross-dialect
          refusals of changes to V2; V1 deleted through CAS and gone from UCloud
Inputs: PEMs (V1_CERT, V1_KEY, V2_CERT, V2_KEY, CHAIN), ports (ALB_PORT, ULB_PORT), the
name of the account's default project (UCLOUD_PROJECT), and the ids printed by earlier
phases (IDS, JSON).
"""

import hashlib
import json
import os
import ssl as pyssl

from aliyun_common import alb, cas, clients, expect_error as ali_error, wait_until
from tencent_common import call, clb, expect_error as tc_error, ssl as tc_ssl, update_instance, wait_record
from ucloud.client import Client
from ucloud.core.exc import RetCodeException

E = os.environ
PHASE = E["CROSS_PHASE"]
IDS = json.loads(E.get("IDS", "{}"))
UCLOUD_REGION = "cn-bj2"
HOST = "shop.example.com"

alb3, _nlb3, cas3 = clients()
_alb2, _nlb2, cas2 = clients(v2=True)


def ulb():
    # The SDK requires a project: the account's default one (by its name, which the Rust
    # test reads from the native API), where the Tencent and Alibaba APIs keep theirs.
    return Client(
        {
            "region": UCLOUD_REGION,
            "project_id": E["UCLOUD_PROJECT"],
            "public_key": E["CERTBIND_ACCESS_KEY_ID"],
            "private_key": E["CERTBIND_ACCESS_KEY_SECRET"],
            "base_url": E["CERTBIND_ENDPOINT"],
        }
    ).ulb()


def fingerprints(pem):
    der = pyssl.PEM_cert_to_DER_cert(pem)
    return hashlib.sha256(der).hexdigest().upper(), ":".join("%02X" % b for b in hashlib.sha1(der).digest())


def retcode(fn):
    try:
        fn()
    except RetCodeException as e:
        return {"code": e.code, "message": e.message}
    raise AssertionError("the UCloud call succeeded")


def cas_by_name(name):
    request = cas.ListUserCertificateOrderRequest(order_type="UPLOAD", show_size=500)
    listing = cas3.list_user_certificate_order(request).body
    found = [c for c in listing.certificate_order_list if c.name == name]
    assert len(found) == 1, listing.to_map()
    return found[0]


def ucloud_by_name(u, name):
    found = [s for s in u.describe_ssl({"Limit": 100})["DataSet"] if s["SSLName"] == name]
    assert len(found) == 1, found
    return found[0]


def alb_certs(listener):
    body = alb3.list_listener_certificates(
        alb.ListListenerCertificatesRequest(listener_id=listener, certificate_type="Server", max_results=100)
    ).body
    return {c.certificate_id: [c.status, c.is_default] for c in body.certificates}


def alb_job_done(job):
    def check():
        jobs = alb3.list_asyn_jobs(alb.ListAsynJobsRequest(job_ids=[job])).body.jobs
        assert len(jobs) == 1 and jobs[0].status in ("Processing", "Succeeded"), [j.to_map() for j in jobs]
        return jobs[0].status == "Succeeded"

    wait_until(f"job {job}", check)


def setup():
    sha256, sha1 = fingerprints(E["V1_CERT"])
    t = tc_ssl()
    # 1. V1 through Tencent SSL.
    v1_tc = call(t, "UploadCertificate", CertificatePublicKey=E["V1_CERT"] + E["CHAIN"],
                 CertificatePrivateKey=E["V1_KEY"], Alias="cross-v1")["CertificateId"]
    assert len(v1_tc) == 8 and v1_tc.isalnum(), v1_tc
    tc_detail = call(t, "DescribeCertificateDetail", CertificateId=v1_tc)
    assert tc_detail["CertFingerprint"] == sha1 and tc_detail["Domain"] == HOST, tc_detail

    # The same certificate through Alibaba CAS: listed, and in detail.
    listed = cas_by_name("cross-v1")
    v1_cas = listed.certificate_id
    assert isinstance(v1_cas, int), listed.to_map()
    assert listed.common_name == HOST and listed.fingerprint == sha256 and listed.upload is True, listed.to_map()
    detail = cas2.get_user_certificate_detail(cas.GetUserCertificateDetailRequest(cert_id=v1_cas)).body
    assert detail.id == v1_cas and detail.common == HOST and detail.fingerprint == sha256, detail.to_map()
    assert detail.cert.startswith(E["V1_CERT"].strip()) and not detail.key, detail.to_map()

    # ... and through UCloud.
    u = ulb()
    found = ucloud_by_name(u, "cross-v1")
    v1_ssl = found["SSLId"]
    assert v1_ssl.startswith("ssl-") and found["HashValue"].upper() == sha256, found
    assert found["Domains"] == HOST and found["BindedTargetSet"] == [], found

    # 2. An ALB with an HTTPS listener whose default is V1 by its CAS CertId.
    lb = alb3.create_load_balancer(alb.CreateLoadBalancerRequest(
        load_balancer_name="cross-alb", vpc_id="vpc-cross", address_type="Internet", load_balancer_edition="Standard",
        load_balancer_billing_config=alb.CreateLoadBalancerRequestLoadBalancerBillingConfig(pay_type="PostPay"),
        zone_mappings=[alb.CreateLoadBalancerRequestZoneMappings(v_switch_id="vsw-1", zone_id="cn-hangzhou-a")],
    )).body.load_balancer_id
    assert lb.startswith("alb-"), lb
    # ALB sends no RegionId: the load balancer is in certbind's default region, which
    # certificate references carry (<CertId>-<region>).
    region = alb3.get_load_balancer_attribute(alb.GetLoadBalancerAttributeRequest(load_balancer_id=lb)).body.region_id
    created = alb3.create_listener(alb.CreateListenerRequest(
        load_balancer_id=lb, listener_protocol="HTTPS", listener_port=int(E["ALB_PORT"]),
        certificates=[alb.CreateListenerRequestCertificates(certificate_id=str(v1_cas))],
        default_actions=[alb.CreateListenerRequestDefaultActions(
            type="ForwardGroup",
            forward_group_config=alb.CreateListenerRequestDefaultActionsForwardGroupConfig(
                server_group_tuples=[alb.CreateListenerRequestDefaultActionsForwardGroupConfigServerGroupTuples(
                    server_group_id="sgp-1")]),
        )],
    )).body
    alb_listener = created.listener_id
    assert alb_listener.startswith("lsn-"), alb_listener
    alb_job_done(created.job_id)
    listed = alb_certs(alb_listener)
    assert listed == {f"{v1_cas}-{region}": ["Associated", True]}, listed

    # A ULB with an HTTPS VServer, bound to V1 by its UCloud id.
    ulb_id = u.create_ulb({"ULBName": "cross-ulb"})["ULBId"]
    vserver = u.create_vserver({"ULBId": ulb_id, "VServerName": "cross-https", "Protocol": "HTTPS",
                                "FrontendPort": int(E["ULB_PORT"])})["VServerId"]
    u.bind_ssl({"SSLId": v1_ssl, "ULBId": ulb_id, "VServerId": vserver})
    vs = u.describe_vserver({"ULBId": ulb_id, "VServerId": vserver})["DataSet"]
    assert [s["SSLId"] for s in vs[0]["SSLSet"]] == [v1_ssl], vs
    # V1's UCloud view now shows both listeners, the ALB one in UCloud's forms.
    targets = ucloud_by_name(u, "cross-v1")["BindedTargetSet"]
    return {
        "v1_tc": v1_tc, "v1_cas": v1_cas, "v1_ssl": v1_ssl, "alb": lb, "alb_listener": alb_listener,
        "alb_region": region, "ulb": ulb_id, "vserver": vserver, "v1_targets": sorted(x["VServerId"] for x in targets),
    }


def rotate():
    ids = IDS
    sha256, sha1 = fingerprints(E["V2_CERT"])
    u = ulb()
    t = tc_ssl()
    # 3. V2 through UCloud CreateSSL.
    v2_ssl = u.create_ssl({"SSLName": "cross-v2", "SSLType": "Pem", "UserCert": E["V2_CERT"],
                           "PrivateKey": E["V2_KEY"], "CaCert": E["CHAIN"]})["SSLId"]
    assert v2_ssl.startswith("ssl-") and v2_ssl != ids["v1_ssl"], v2_ssl
    # Tencent finds it by its name and shows it under its own id.
    listed = call(t, "DescribeCertificates", SearchKey="cross-v2")["Certificates"]
    assert len(listed) == 1, listed
    v2_tc = listed[0]["CertificateId"]
    assert len(v2_tc) == 8 and v2_tc != ids["v1_tc"], listed
    assert call(t, "DescribeCertificateDetail", CertificateId=v2_tc)["CertFingerprint"] == sha1

    # V1 -> V2 everywhere, through Tencent's one-click update by CertificateId, called again
    # while DeployRecordId is 0 (the API document), then the record polled until done.
    answer = update_instance(t, OldCertificateId=ids["v1_tc"], CertificateId=v2_tc, ResourceTypes=["clb"])
    record = answer["DeployRecordId"]
    progress = answer["UpdateSyncProgress"][0]
    regions = sorted(r["Region"] for r in progress["UpdateSyncProgressRegions"])
    detail = wait_record(t, record)
    assert detail["TotalCount"] == 2 and detail["SuccessTotalCount"] == 2 and detail["FailedTotalCount"] == 0, detail
    items = detail["RecordDetailList"][0]["List"]
    history = call(t, "DescribeHostUpdateRecord", OldCertificateId=ids["v1_tc"])["DeployRecordList"]
    assert [(r["Id"], r["Status"], r["CertId"]) for r in history] == [(record, 1, v2_tc)], history
    shown = ("ListenerId", "InstanceId", "Region", "Status", "CertId", "OldCertId", "Protocol", "Port")
    return {
        "v2_ssl": v2_ssl, "v2_tc": v2_tc, "record": record, "regions": regions,
        "details": [{k: i[k] for k in shown} for i in items],
    }


def after():
    ids = IDS
    u = ulb()
    t = tc_ssl()
    v2_cas = cas_by_name("cross-v2").certificate_id
    v2_ref = f"{v2_cas}-{ids['alb_region']}"
    # 4. Alibaba: V2 is the ALB listener's Associated default; V1 is gone from it.
    alb_before = alb_certs(ids["alb_listener"])
    assert alb_before == {v2_ref: ["Associated", True]}, alb_before
    attr = alb3.get_listener_attribute(alb.GetListenerAttributeRequest(listener_id=ids["alb_listener"])).body
    assert [c.certificate_id for c in attr.certificates] == [v2_ref], attr.to_map()
    # UCloud: the VServer carries V2; V2's relations are both listeners, each as default.
    vs = u.describe_vserver({"ULBId": ids["ulb"], "VServerId": ids["vserver"]})["DataSet"][0]
    assert [s["SSLId"] for s in vs["SSLSet"]] == [ids["v2_ssl"]], vs
    relations = u.describe_ssl_v2({"SSLId": ids["v2_ssl"]})["DataSet"][0]["Relations"]
    v1_left = u.describe_ssl_v2({"SSLId": ids["v1_ssl"]})["DataSet"][0]["Relations"]
    assert v1_left == [], v1_left
    # Tencent CLB sees both listeners (in its own id forms) with V2 as their certificate.
    tencent_listeners = {}
    for detail in ids["details"]:
        listed = call(clb(detail["Region"]), "DescribeListeners", LoadBalancerId=detail["InstanceId"])["Listeners"]
        for listener in listed:
            tencent_listeners[listener["ListenerId"]] = [listener["Protocol"], listener["Port"],
                                                         listener["Certificate"]["CertId"]]

    # 5. Errors about V2 (made through UCloud, bound through ALB and ULB, rotated through
    # Tencent), each in the envelope of the dialect asked; none changes anything.
    errors = {
        "ucloud_delete_ssl": retcode(lambda: u.delete_ssl({"SSLId": ids["v2_ssl"]})),
        "ucloud_unbind_alb_default": retcode(
            lambda: u.unbind_ssl({"SSLId": ids["v2_ssl"], "ULBId": "ulb-" + ids["alb"].split("-", 1)[1],
                                  "VServerId": "vserver-" + ids["alb_listener"].split("-", 1)[1]})),
        "aliyun_delete": ali_error(
            lambda: cas3.delete_user_certificate(cas.DeleteUserCertificateRequest(cert_id=v2_cas)),
            "OperationDenied.CertificateInUse", 400),
        "aliyun_delete_v2_signature": ali_error(
            lambda: cas2.delete_user_certificate(cas.DeleteUserCertificateRequest(cert_id=v2_cas)),
            "OperationDenied.CertificateInUse", 400),
    }
    # The UCloud VServer is an ALB listener too (its ULB proxies requests): Alibaba refuses
    # to dissociate its default certificate, in Alibaba's envelope and id forms.
    ulb_listener = ids["ulb_listener"]
    errors["aliyun_dissociate_ucloud_default"] = ali_error(
        lambda: alb3.dissociate_additional_certificates_from_listener(
            alb.DissociateAdditionalCertificatesFromListenerRequest(
                listener_id=ulb_listener,
                certificates=[alb.DissociateAdditionalCertificatesFromListenerRequestCertificates(
                    certificate_id=str(v2_cas))])),
        "OperationDenied.DefaultCertificateUsed", 400)
    tc = tc_error("FailedOperation.BoundResources",
                  lambda: call(t, "DeleteCertificate", CertificateId=ids["v2_tc"]))
    errors["tencent_delete"] = {"code": tc.code, "message": tc.message}
    assert alb_certs(ids["alb_listener"]) == alb_before
    assert alb_certs(ulb_listener) == {f"{v2_cas}-{UCLOUD_REGION}": ["Associated", True]}
    assert u.describe_ssl_v2({"SSLId": ids["v2_ssl"]})["DataSet"][0]["Relations"] == relations
    assert cas_by_name("cross-v2").certificate_id == v2_cas

    # V1, bound nowhere now, is deleted through CAS (by its CAS id); UCloud no longer lists it.
    cas3.delete_user_certificate(cas.DeleteUserCertificateRequest(cert_id=ids["v1_cas"]))
    remaining = [s["SSLId"] for s in u.describe_ssl({"Limit": 100})["DataSet"]]
    assert remaining == [ids["v2_ssl"]], remaining
    gone = retcode(lambda: u.describe_ssl({"SSLId": ids["v1_ssl"]}))
    tc_gone = tc_error("FailedOperation.CertificateNotFound",
                       lambda: call(t, "DescribeCertificateDetail", CertificateId=ids["v1_tc"]))
    return {
        "v2_cas": v2_cas,
        "tencent_listeners": tencent_listeners,
        "relations": sorted(([r["ListenerId"], r["LoadBalancerId"], r["IsDefault"]] for r in relations)),
        "errors": errors,
        "v1_gone_ucloud": gone,
        "v1_gone_tencent": tc_gone.code,
    }


PHASES = {"setup": setup, "rotate": rotate, "after": after}
print(json.dumps(PHASES[PHASE]()))
