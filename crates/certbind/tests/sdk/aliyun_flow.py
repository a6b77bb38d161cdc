"""ALB (2020-06-16) or NLB (2022-04-30) plus CAS, driven through the official SDKs.

PRODUCT=alb|nlb picks the API; PHASE picks a step (the Rust test handshakes with the
listener between steps); IDS carries the ids the previous step printed. Writes go
through both signatures: ACS3 (the default) and the legacy RPC one (signature_algorithm='v2').
"""

import json
from concurrent.futures import ThreadPoolExecutor
import os
import time

from aliyun_common import (
    REGION, alb, nlb, cas, clients, done, expect_error, upload, wait_until,
)

PRODUCT = os.environ["PRODUCT"]
PHASE = os.environ["PHASE"]
IDS = json.loads(os.environ.get("IDS", "{}"))

alb3, nlb3, cas3 = clients()
alb2, nlb2, cas2 = clients(v2=True)


class Api:
    """The few places where ALB and NLB differ, behind one interface."""

    def __init__(self, v2=False):
        self.v2 = v2
        self.c = (alb2 if v2 else alb3) if PRODUCT == "alb" else (nlb2 if v2 else nlb3)
        self.m = alb if PRODUCT == "alb" else nlb

    def create_lb(self, name, **extra):
        if PRODUCT == "alb":
            body = self.c.create_load_balancer(alb.CreateLoadBalancerRequest(
                load_balancer_name=name, vpc_id="vpc-test", address_type="Internet", **extra,
                load_balancer_edition="Standard",
                load_balancer_billing_config=alb.CreateLoadBalancerRequestLoadBalancerBillingConfig(pay_type="PostPay"),
                zone_mappings=[alb.CreateLoadBalancerRequestZoneMappings(v_switch_id="vsw-1", zone_id="cn-hangzhou-a")],
            )).body
            return body.load_balancer_id
        body = self.c.create_load_balancer(nlb.CreateLoadBalancerRequest(
            load_balancer_name=name, vpc_id="vpc-test", address_type="Internet", load_balancer_type="Network", **extra,
            zone_mappings=[nlb.CreateLoadBalancerRequestZoneMappings(v_switch_id="vsw-1", zone_id="cn-hangzhou-a")],
        )).body
        return body.loadbalancer_id

    def tls(self):
        return "HTTPS" if PRODUCT == "alb" else "TCPSSL"

    def plain(self):
        return "HTTP" if PRODUCT == "alb" else "TCP"

    def create_listener(self, lb, protocol, port, cert=None, **extra):
        if PRODUCT == "alb":
            certs = [alb.CreateListenerRequestCertificates(certificate_id=cert)] if cert else None
            req = alb.CreateListenerRequest(
                load_balancer_id=lb, listener_protocol=protocol, listener_port=port, certificates=certs,
                default_actions=[alb.CreateListenerRequestDefaultActions(
                    type="ForwardGroup",
                    forward_group_config=alb.CreateListenerRequestDefaultActionsForwardGroupConfig(
                        server_group_tuples=[alb.CreateListenerRequestDefaultActionsForwardGroupConfigServerGroupTuples(server_group_id="sgp-1")]),
                )], **extra)
        else:
            req = nlb.CreateListenerRequest(
                load_balancer_id=lb, listener_protocol=protocol, listener_port=port,
                certificate_ids=[cert] if cert else None, server_group_id="sgp-1", **extra)
        body = self.c.create_listener(req).body
        return body.listener_id, body.job_id

    def get_listener(self, listener):
        return self.c.get_listener_attribute(self.m.GetListenerAttributeRequest(listener_id=listener)).body

    def default_of(self, listener):
        body = self.get_listener(listener)
        if PRODUCT == "alb":
            return [c.certificate_id for c in body.certificates]
        return list(body.certificate_ids or [])

    def list_listeners(self, lb):
        return self.c.list_listeners(self.m.ListListenersRequest(load_balancer_ids=[lb])).body

    def update_default(self, listener, cert, **extra):
        if PRODUCT == "alb":
            req = alb.UpdateListenerAttributeRequest(
                listener_id=listener, certificates=[alb.UpdateListenerAttributeRequestCertificates(certificate_id=cert)], **extra)
        else:
            req = nlb.UpdateListenerAttributeRequest(listener_id=listener, certificate_ids=[cert], **extra)
        return self.c.update_listener_attribute(req).body.job_id

    def associate(self, listener, certs, **extra):
        if PRODUCT == "alb":
            req = alb.AssociateAdditionalCertificatesWithListenerRequest(
                listener_id=listener,
                certificates=[alb.AssociateAdditionalCertificatesWithListenerRequestCertificates(certificate_id=c) for c in certs],
                **extra)
        else:
            req = nlb.AssociateAdditionalCertificatesWithListenerRequest(
                listener_id=listener, additional_certificate_ids=certs, **extra)
        return self.c.associate_additional_certificates_with_listener(req).body.job_id

    def dissociate(self, listener, certs, **extra):
        if PRODUCT == "alb":
            req = alb.DissociateAdditionalCertificatesFromListenerRequest(
                listener_id=listener,
                certificates=[alb.DissociateAdditionalCertificatesFromListenerRequestCertificates(certificate_id=c) for c in certs],
                **extra)
            return self.c.dissociate_additional_certificates_from_listener(req).body.job_id
        req = nlb.DisassociateAdditionalCertificatesWithListenerRequest(
            listener_id=listener, additional_certificate_ids=certs, **extra)
        return self.c.disassociate_additional_certificates_with_listener(req).body.job_id

    def certs(self, listener):
        """{certificate id: (status, is_default)} from ListListenerCertificates."""
        if PRODUCT == "alb":
            body = self.c.list_listener_certificates(alb.ListListenerCertificatesRequest(
                listener_id=listener, certificate_type="Server", max_results=100)).body
        else:
            body = self.c.list_listener_certificates(nlb.ListListenerCertificatesRequest(
                listener_id=listener, cert_type="Server", max_results=50)).body
            assert body.certificate_ids == [c.certificate_id for c in body.certificates], body.to_map()
        return {c.certificate_id: (c.status, c.is_default) for c in body.certificates}

    def job_status(self, job):
        if PRODUCT == "alb":
            body = self.c.list_asyn_jobs(alb.ListAsynJobsRequest(job_ids=[job])).body
            assert len(body.jobs) == 1 and body.jobs[0].id == job, body.to_map()
            return body.jobs[0].status
        return self.c.get_job_status(nlb.GetJobStatusRequest(job_id=job)).body.status

    def wait_job(self, job):
        seen = []

        def check():
            status = self.job_status(job)
            if not seen or seen[-1] != status:
                seen.append(status)
            assert status in ("Processing", "Succeeded"), seen
            return status == "Succeeded"

        wait_until(f"job {job}", check)
        return seen


def watch(listener, key, final):
    """The distinct statuses ListListenerCertificates shows for one certificate until it
    reaches `final` ("absent" when not listed)."""
    seen = []

    def check():
        status = api.certs(listener).get(key, ("absent",))[0]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == final

    wait_until(f"{key} {final}", check)
    return seen


def ref(cert_id):
    """ALB/NLB certificate reference: <CertId>-<region>."""
    return f"{cert_id}-{REGION}"


def server_ref(cert_id, lb_region):
    return f"{cert_id}-{lb_region}"


api = Api()
api_v2 = Api(v2=True)


def phase_setup():
    ids = {}
    for name in ("a", "b", "c", "d", "e"):
        ids[name] = upload(cas3 if name != "b" else cas2, f"{PRODUCT}-{name}", name)
    detail = cas3.get_user_certificate_detail(cas.GetUserCertificateDetailRequest(cert_id=ids["a"])).body
    assert detail.id == ids["a"] and detail.common == "a.example.com", detail.to_map()
    assert detail.cert.startswith("-----BEGIN CERTIFICATE-----") and not detail.key, "no private key is ever returned"
    assert "a.example.com" in detail.sans and detail.expired is False, detail.to_map()
    filtered = cas2.get_user_certificate_detail(cas.GetUserCertificateDetailRequest(cert_id=ids["a"], cert_filter=True)).body
    assert filtered.cert is None and filtered.name == f"{PRODUCT}-a", filtered.to_map()
    listing = cas3.list_user_certificate_order(cas.ListUserCertificateOrderRequest(order_type="UPLOAD", show_size=500)).body
    listed = {c.certificate_id: c for c in listing.certificate_order_list}
    assert all(ids[n] in listed for n in ids) and listing.total_count >= 5, listing.to_map()
    assert listed[ids["b"]].common_name == "b.example.com" and listed[ids["b"]].upload is True

    lb = api.create_lb(f"{PRODUCT}-main")
    assert lb.startswith(PRODUCT + "-"), lb
    attr = api.c.get_load_balancer_attribute(api.m.GetLoadBalancerAttributeRequest(load_balancer_id=lb)).body
    assert attr.load_balancer_id == lb and attr.load_balancer_status == "Active" and attr.vpc_id == "vpc-test", attr.to_map()
    lbs = api_v2.c.list_load_balancers(api.m.ListLoadBalancersRequest(load_balancer_ids=[lb])).body
    assert lbs.total_count == 1 and lbs.load_balancers[0].load_balancer_id == lb, lbs.to_map()
    region = attr.region_id

    port = int(os.environ["TLS_PORT"])
    listener, job = api.create_listener(lb, api.tls(), port, ref(ids["a"]))
    assert listener.startswith("lsn-") and job, (listener, job)
    create_job = api.wait_job(job)
    plain, plain_job = api_v2.create_listener(lb, api.plain(), int(os.environ["PLAIN_PORT"]))
    api.wait_job(plain_job)
    got = api.get_listener(listener)
    assert got.listener_protocol == api.tls() and got.listener_port == port and got.load_balancer_id == lb, got.to_map()
    assert got.listener_status == "Running", got.to_map()
    assert api.default_of(listener) == [server_ref(ids["a"], region)]
    listed = api.list_listeners(lb)
    assert listed.total_count == 2 and {l.listener_id for l in listed.listeners} == {listener, plain}, listed.to_map()

    # Associate b and c with the legacy signature; watch Associating -> Associated.
    job = api_v2.associate(listener, [ref(ids["b"]), str(ids["c"])])
    assoc_seen = watch(listener, server_ref(ids["b"], region), "Associated")
    assert set(assoc_seen) <= {"absent", "Associating", "Associated"}, assoc_seen
    assoc_job = api.wait_job(job)
    final = api.certs(listener)
    assert final == {
        server_ref(ids["a"], region): ("Associated", True),
        server_ref(ids["b"], region): ("Associated", False),
        server_ref(ids["c"], region): ("Associated", False),
    }, final
    done({
        "ids": {**ids, "lb": lb, "listener": listener, "plain": plain, "region": region},
        "create_job": create_job, "assoc_seen": assoc_seen, "assoc_job": assoc_job,
    })


def phase_dissociate():
    ids = IDS
    listener, region = ids["listener"], ids["region"]
    job = api.dissociate(listener, [ref(ids["b"])])
    dissoc_seen = watch(listener, server_ref(ids["b"], region), "absent")
    assert set(dissoc_seen) <= {"Associated", "Dissociating", "absent"}, dissoc_seen
    dissoc_job = api.wait_job(job)
    assert server_ref(ids["b"], region) not in api.certs(listener)

    # The default certificate moves from a to d (UpdateListenerAttribute, legacy signature).
    job = api_v2.update_default(listener, ref(ids["d"]))
    update_job = api.wait_job(job)
    assert api.default_of(listener) == [server_ref(ids["d"], region)]
    final = api.certs(listener)
    assert final == {
        server_ref(ids["d"], region): ("Associated", True),
        server_ref(ids["c"], region): ("Associated", False),
    }, final
    done({"dissoc_seen": dissoc_seen, "dissoc_job": dissoc_job, "update_job": update_job})


def phase_errors():
    ids = IDS
    listener, plain, region = ids["listener"], ids["plain"], ids["region"]
    errors = {}

    def record(name, fn, code, status):
        errors[name] = expect_error(fn, code, status)

    before = api.certs(listener)
    # DryRun validates and changes nothing.
    record("dry_run", lambda: api.associate(listener, [ref(ids["e"])], dry_run=True), "DryRunOperation", 400)
    record("dry_run_v2", lambda: api_v2.update_default(listener, ref(ids["e"]), dry_run=True), "DryRunOperation", 400)
    assert api.certs(listener) == before
    # A dry run still reports what would fail.
    record("dry_run_invalid", lambda: api.associate(listener, [ref(ids["c"])], dry_run=True),
           "ResourceAlreadyAssociated.Certificate", 400)

    # ClientToken: the same token and request answer the same job.
    job1 = api.associate(listener, [ref(ids["e"])], client_token="aliyun-token-1")
    job2 = api.associate(listener, [ref(ids["e"])], client_token="aliyun-token-1")
    assert job1 == job2, (job1, job2)
    api.wait_job(job1)
    job3 = api_v2.associate(listener, [ref(ids["e"])], client_token="aliyun-token-1")
    assert job3 == job1, (job1, job3)
    record("token_mismatch", lambda: api.dissociate(listener, [ref(ids["e"])], client_token="aliyun-token-1"),
           "IdempotenceParamNotMatch", 400)

    record("already_associated", lambda: api.associate(listener, [ref(ids["c"])]),
           "ResourceAlreadyAssociated.Certificate", 400)
    record("not_associated", lambda: api.dissociate(listener, [ref(ids["b"])]),
           "ResourceNotAssociated.Certificate", 400)
    record("default_used", lambda: api_v2.dissociate(listener, [ref(ids["d"])]),
           "OperationDenied.DefaultCertificateUsed", 400)
    record("listener_not_found", lambda: api.associate("lsn-999999", [ref(ids["b"])]), "ResourceNotFound.Listener", 404)
    record("listener_not_found_v2", lambda: api_v2.get_listener("lsn-999999"), "ResourceNotFound.Listener", 404)
    record("cert_not_found", lambda: api.associate(listener, ["999999-" + REGION]), "ResourceNotFound.Certificate", 404)
    plain_code = "OperationDenied.HttpListenerNotSupport" if PRODUCT == "alb" else "OperationDenied.ListenerProtocolNotSupport"
    record("plain_listener", lambda: api.associate(plain, [ref(ids["b"])]), plain_code, 400)
    record("no_default", lambda: api.create_listener(ids["lb"], api.tls(), int(os.environ["SPARE_PORT"])),
           "OperationFailed.DefaultCertificateNotFound", 400)
    record("too_many", lambda: api.associate(listener, [str(900000 + i) for i in range(16)]), "InvalidParameter", 400)
    if PRODUCT == "alb":
        record("missing_param", lambda: api.c.associate_additional_certificates_with_listener(
            alb.AssociateAdditionalCertificatesWithListenerRequest(
                certificates=[alb.AssociateAdditionalCertificatesWithListenerRequestCertificates(certificate_id="1")])),
            "MissingParam.ListenerId", 400)
        record("missing_certs", lambda: api.c.associate_additional_certificates_with_listener(
            alb.AssociateAdditionalCertificatesWithListenerRequest(listener_id=listener)),
            "MissingParam.Certificates", 400)
    else:
        record("missing_param", lambda: api.c.associate_additional_certificates_with_listener(
            nlb.AssociateAdditionalCertificatesWithListenerRequest(additional_certificate_ids=["1"])),
            "MissingParam.ListenerId", 400)
        record("missing_certs", lambda: api.c.disassociate_additional_certificates_with_listener(
            nlb.DisassociateAdditionalCertificatesWithListenerRequest(listener_id=listener)),
            "MissingParam.AdditionalCertificateIds", 400)
    record("illegal_port", lambda: api.create_listener(ids["lb"], api.plain(), "eighty"), "IllegalParam.ListenerPort", 400)
    record("illegal_dry_run", lambda: api.associate(listener, [ref(ids["b"])], dry_run="maybe"), "IllegalParam.DryRun", 400)
    record("illegal_protocol", lambda: api.create_listener(ids["lb"], "QUIC" if PRODUCT == "nlb" else "TCPSSL", 1443),
           "IllegalParam.ListenerProtocol", 400)
    # The other product does not see this product's resources.
    if PRODUCT == "alb":
        record("other_products_listener", lambda: nlb3.get_listener_attribute(
            nlb.GetListenerAttributeRequest(listener_id=listener)), "ResourceNotFound.Listener", 404)
        record("other_products_lb", lambda: nlb3.get_load_balancer_attribute(
            nlb.GetLoadBalancerAttributeRequest(load_balancer_id=ids["lb"].replace("alb", "nlb"))),
            "ResourceNotFound.LoadBalancer", 404)
    else:
        record("other_products_listener", lambda: alb3.get_listener_attribute(
            alb.GetListenerAttributeRequest(listener_id=listener)), "ResourceNotFound.Listener", 404)
        record("other_products_lb", lambda: alb3.get_load_balancer_attribute(
            alb.GetLoadBalancerAttributeRequest(load_balancer_id=ids["lb"].replace("nlb", "alb"))),
            "ResourceNotFound.LoadBalancer", 404)
    # ClientToken on creation: the same token answers the same load balancer.
    first = api.create_lb("idempotent", client_token="aliyun-lb-token")
    assert api_v2.create_lb("idempotent", client_token="aliyun-lb-token") == first
    record("create_dry_run", lambda: api.create_lb("dry", dry_run=True), "DryRunOperation", 400)
    record("missing_vpc", lambda: api.c.create_load_balancer(api.m.CreateLoadBalancerRequest(load_balancer_name="novpc")),
           "MissingParam.VpcId", 400)

    # ResourceInConfiguring.Listener: a write while another job on the listener still runs.
    # Eight writes sent at once (eight clients, both signatures, eight threads): the check
    # and the job it guards share one transaction, so exactly one starts a job; the others
    # find that job unfinished, or, when it was served and settled first (a one-target job
    # takes milliseconds), c already gone.
    configuring = None
    clients = [Api(v2=bool(i % 2)) for i in range(8)]
    for attempt in range(10):
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            futures = [pool.submit(client.dissociate, listener, [ref(ids["c"])]) for client in clients]
        started, refused = [], []
        for future in futures:
            try:
                started.append(future.result())
            except Exception as e:  # noqa: BLE001
                assert e.code in ("ResourceInConfiguring.Listener", "ResourceNotAssociated.Certificate"), e.code
                assert e.status_code == 400, e.status_code
                refused.append(e.code)
                if e.code == "ResourceInConfiguring.Listener":
                    configuring = {"code": e.code, "status": e.status_code, "message": e.message, "attempt": attempt}
        assert len(started) == 1 and len(refused) == len(clients) - 1, (started, refused)
        api.wait_job(started[0])
        # Put c back for the steps that follow.
        wait_until("settled", lambda: all(s == "Associated" for s, _ in api.certs(listener).values()))
        api.wait_job(api.associate(listener, [ref(ids["c"])]))
        wait_until("settled", lambda: all(s == "Associated" for s, _ in api.certs(listener).values()))
        if configuring:
            break
    assert configuring, "never caught a listener while it was configuring"
    errors["configuring"] = configuring

    # IncorrectStatus.Listener: a listener whose port is taken is not serving.
    busy, busy_job = api.create_listener(ids["lb"], api.tls(), int(os.environ["BUSY_PORT"]), ref(ids["a"]))
    wait_until("listener stopped", lambda: api.get_listener(busy).listener_status == "Stopped")
    record("incorrect_status", lambda: api.associate(busy, [ref(ids["b"])]), "IncorrectStatus.Listener", 400)

    # ResourceQuotaExceeded.LoadBalancerCertificatesNum: 25 additional certificates per LB.
    lb2 = api.create_lb(f"{PRODUCT}-quota")
    quota_listener, job = api.create_listener(lb2, api.tls(), int(os.environ["QUOTA_PORT"]), ref(ids["a"]))
    api.wait_job(job)
    copies = [upload(cas3, f"{PRODUCT}-copy-{i}", "e") for i in range(26)]
    api.wait_job(api.associate(quota_listener, [ref(c) for c in copies[:15]]))
    api.wait_job(api.associate(quota_listener, [ref(c) for c in copies[15:25]]))
    record("quota", lambda: api.associate(quota_listener, [ref(copies[25])]),
           "ResourceQuotaExceeded.LoadBalancerCertificatesNum", 400)
    assert len(api.certs(quota_listener)) == 26

    # CAS errors.
    record("cas_missing_name", lambda: cas3.upload_user_certificate(cas.UploadUserCertificateRequest(cert="x", key="y")),
           "MissingParam.Name", 400)
    record("cas_bad_pem", lambda: cas2.upload_user_certificate(cas.UploadUserCertificateRequest(name="bad", cert="x", key="y")),
           "InvalidParameter", 400)
    record("cas_illegal_id", lambda: cas3.get_user_certificate_detail(cas.GetUserCertificateDetailRequest(cert_id="abc")),
           "IllegalParam.CertId", 400)
    record("cas_not_found", lambda: cas3.delete_user_certificate(cas.DeleteUserCertificateRequest(cert_id=999999)),
           "ResourceNotFound.Certificate", 404)
    record("cas_in_use", lambda: cas3.delete_user_certificate(cas.DeleteUserCertificateRequest(cert_id=ids["d"])),
           "OperationDenied.CertificateInUse", 400)
    done({"errors": errors, "busy": busy})


def phase_cleanup():
    ids = IDS
    body = api.c.delete_listener(api.m.DeleteListenerRequest(listener_id=ids["listener"])).body
    assert body.request_id
    expect_error(lambda: api.get_listener(ids["listener"]), "ResourceNotFound.Listener", 404)
    api_v2.c.delete_listener(api.m.DeleteListenerRequest(listener_id=ids["plain"]))
    api.c.delete_listener(api.m.DeleteListenerRequest(listener_id=IDS["busy"]))
    api_v2.c.delete_load_balancer(api.m.DeleteLoadBalancerRequest(load_balancer_id=ids["lb"]))
    expect_error(lambda: api.c.get_load_balancer_attribute(api.m.GetLoadBalancerAttributeRequest(load_balancer_id=ids["lb"])),
                 "ResourceNotFound.LoadBalancer", 404)
    # b is bound nowhere now: CAS deletes it.
    cas2.delete_user_certificate(cas.DeleteUserCertificateRequest(cert_id=ids["b"]))
    expect_error(lambda: cas3.get_user_certificate_detail(cas.GetUserCertificateDetailRequest(cert_id=ids["b"])),
                 "ResourceNotFound.Certificate", 404)
    if PRODUCT == "alb":
        names, statuses, token = set(), set(), None
        while True:
            page = api.c.list_asyn_jobs(alb.ListAsynJobsRequest(max_results=100, next_token=token)).body
            names |= {j.api_name for j in page.jobs}
            statuses |= {j.status for j in page.jobs}
            token = page.next_token
            if not token:
                break
        assert {"CreateListener", "AssociateAdditionalCertificatesWithListener",
                "DissociateAdditionalCertificatesFromListener", "UpdateListenerAttribute"} <= names, names
        assert statuses <= {"Processing", "Succeeded", "Failed"}, statuses
    done({"cleaned": True})


{"setup": phase_setup, "dissociate": phase_dissociate, "errors": phase_errors, "cleanup": phase_cleanup}[PHASE]()
