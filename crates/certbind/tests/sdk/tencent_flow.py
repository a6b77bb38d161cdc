"""One-click update through the official Tencent SDKs, in phases (TC_PHASE) so that the
Rust test can look at the listeners with real TLS handshakes between them."""

import os

from tencent_common import call, clb, done, ssl, update_instance, wait_record, wait_task

E = os.environ
PHASE = E["TC_PHASE"]

if PHASE == "setup":
    s = ssl()
    old = call(s, "UploadCertificate", CertificatePublicKey=E["OLD_CERT"], CertificatePrivateKey=E["OLD_KEY"],
               Alias="flow-old", ProjectId=0)["CertificateId"]
    assert len(old) == 8, old
    expiring = call(s, "DescribeCertificates", FilterExpiring=1)["Certificates"]
    assert [x["CertificateId"] for x in expiring] == [old] and expiring[0]["IsExpiring"] is True, expiring
    gz, bj = clb("ap-guangzhou"), clb("ap-beijing")
    lb1 = call(gz, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="gz-edge")["LoadBalancerIds"][0]
    lb2 = call(bj, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="bj-edge")["LoadBalancerIds"][0]
    assert lb1.startswith("lb-") and lb2.startswith("lb-"), (lb1, lb2)
    created = call(gz, "CreateListener", LoadBalancerId=lb1, Ports=[int(E["PORT_HTTPS"])], Protocol="HTTPS",
                   ListenerNames=["https"], Certificate={"SSLMode": "UNIDIRECTIONAL", "CertId": old})
    l1 = created["ListenerIds"][0]
    wait_task(gz, created["RequestId"])
    created = call(bj, "CreateListener", LoadBalancerId=lb2, Ports=[int(E["PORT_TCPSSL"])], Protocol="TCP_SSL",
                   Certificate={"CertId": old})
    l2 = created["ListenerIds"][0]
    wait_task(bj, created["RequestId"])
    assert l1.startswith("lbl-") and l2.startswith("lbl-")
    # Each region's client sees its own load balancers.
    listed = call(gz, "DescribeLoadBalancers")
    assert [lb["LoadBalancerId"] for lb in listed["LoadBalancerSet"]] == [lb1], listed
    listeners = call(bj, "DescribeListeners", LoadBalancerId=lb2)["Listeners"]
    assert listeners[0]["Protocol"] == "TCP_SSL" and listeners[0]["Certificate"]["CertId"] == old, listeners
    by_cert = call(gz, "DescribeLoadBalancerListByCertId", CertIds=[old])["CertSet"]
    assert sorted(lb["LoadBalancerId"] for lb in by_cert[0]["LoadBalancers"]) == sorted([lb1, lb2]), by_cert
    done({"old": old, "lb1": lb1, "lb2": lb2, "l1": l1, "l2": l2})

if PHASE == "update_region":
    s = ssl()
    old = E["OLD_ID"]
    answer = update_instance(
        s, OldCertificateId=old, ResourceTypes=["clb"],
        ResourceTypesRegions=[{"ResourceType": "clb", "Regions": ["ap-guangzhou"]}],
        CertificatePublicKey=E["NEW_CERT"], CertificatePrivateKey=E["NEW_KEY"], AllowDownload=True,
        ExpiringNotificationSwitch=1, Tags=[{"TagKey": "team", "TagValue": "edge"}], ProjectId=3)
    assert answer["DeployStatus"] == 1, answer
    progress = answer["UpdateSyncProgress"][0]
    assert progress["ResourceType"] == "clb", progress
    assert [r["Region"] for r in progress["UpdateSyncProgressRegions"]] == ["ap-guangzhou"], progress
    record = answer["DeployRecordId"]
    detail = wait_record(s, record)
    assert detail["TotalCount"] == 1 and detail["SuccessTotalCount"] == 1, detail
    item = detail["RecordDetailList"][0]["List"][0]
    assert item["Status"] == 1 and item["Region"] == "ap-guangzhou" and item["ListenerId"] == E["L1"], item
    assert item["OldCertId"] == old and item["Protocol"] == "HTTPS" and item["InstanceId"] == E["LB1"], item
    new = item["CertId"]
    # The repeated call after completion finds nothing left in that region.
    records = call(s, "DescribeHostUpdateRecord", OldCertificateId=old)
    assert records["DeployRecordList"][0]["Id"] == record and records["DeployRecordList"][0]["Status"] == 1, records
    assert records["DeployRecordList"][0]["CertId"] == new, records
    # Uploaded with AllowDownload, Tags and ProjectId: all kept; the old one ignores expiry.
    new_detail = call(s, "DescribeCertificateDetail", CertificateId=new)
    assert "PRIVATE KEY" in (new_detail["CertificatePrivateKey"] or ""), "AllowDownload not honoured"
    assert new_detail["ProjectId"] == "3" and new_detail["Tags"][0]["TagKey"] == "team", new_detail
    old_listed = call(s, "DescribeCertificates", CertIds=[old])["Certificates"][0]
    assert old_listed["IsIgnore"] is True, old_listed
    assert call(s, "DescribeCertificates", FilterExpiring=1)["TotalCount"] == 0, "expiry reminder not switched off"
    done({"record": record, "new": new})

if PHASE == "update_all":
    # Over GET, with the new certificate by id, both regions: only the Beijing listener is left.
    s = ssl(method="GET")
    answer = update_instance(
        s, OldCertificateId=E["OLD_ID"], ResourceTypes=["clb"], CertificateId=E["NEW_ID"],
        ResourceTypesRegions=[{"ResourceType": "clb", "Regions": ["ap-guangzhou", "ap-beijing"]}])
    assert answer["DeployStatus"] == 1, answer
    detail = wait_record(s, answer["DeployRecordId"])
    items = detail["RecordDetailList"][0]["List"]
    assert [(i["ListenerId"], i["Region"], i["Status"]) for i in items] == [(E["L2"], "ap-beijing", 1)], items
    assert items[0]["Protocol"] == "TCP_SSL", items
    done({"record": answer["DeployRecordId"]})

if PHASE == "rollback":
    s = ssl()
    rolled = call(s, "UpdateCertificateRecordRollback", DeployRecordId=int(E["RECORD"]))
    record = rolled["DeployRecordId"]
    assert record and record != int(E["RECORD"]), rolled
    detail = wait_record(s, record)
    items = detail["RecordDetailList"][0]["List"]
    assert [(i["ListenerId"], i["Status"]) for i in items] == [(E["L2"], 4)], items
    assert items[0]["CertId"] == E["OLD_ID"] and items[0]["OldCertId"] == E["NEW_ID"], items
    listeners = call(clb("ap-beijing"), "DescribeListeners", LoadBalancerId=E["LB2"])["Listeners"]
    assert listeners[0]["Certificate"]["CertId"] == E["OLD_ID"], listeners
    done({"record": record})

raise SystemExit("unknown phase " + PHASE)
