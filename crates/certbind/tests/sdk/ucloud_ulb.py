"""Drives certbind's UCloud ULB dialect with the official SDK (ucloud-sdk-python3), unmodified.

Phases (CERTBIND_UCLOUD_PHASE), each printing a JSON object as its last line:
- setup:  certificates, load balancers, VServers, listeners and bindings; the Describe calls
- update: one UpdateSSLBinding with the arguments in CERTBIND_UCLOUD_ARGS (JSON); with
          "invoke" set, sent through client.invoke (to carry the ULBId/VServerId aliases,
          which the SDK's request schema drops)
- errors: every refusal, each provoked once; prints {name: RetCodeException.code}
Inputs (PEMs, ports, and ids from setup) come from the JSON file CERTBIND_UCLOUD_INPUT.
"""

import json
import os

import requests
from ucloud.client import Client
from ucloud.core.auth import Credential
from ucloud.core.exc import RetCodeException

ENDPOINT = os.environ["CERTBIND_ENDPOINT"]
KEY_ID = os.environ["CERTBIND_ACCESS_KEY_ID"]
SECRET = os.environ["CERTBIND_ACCESS_KEY_SECRET"]
PROJECT = "org-certbind"
OTHER_PROJECT = "org-other"
INPUT = json.load(open(os.environ["CERTBIND_UCLOUD_INPUT"]))


def ulb(project=PROJECT, public_key=KEY_ID, private_key=SECRET, region="cn-bj2"):
    return Client(
        {
            "region": region,
            "project_id": project,
            "public_key": public_key,
            "private_key": private_key,
            "base_url": ENDPOINT,
        }
    ).ulb()


def pem(name):
    return INPUT["certs"][name]


def port(name):
    return INPUT["ports"][name]


def code_of(call):
    try:
        call()
    except RetCodeException as e:
        return e.code
    raise AssertionError("the call succeeded")


def setup():
    c = ulb()
    other = ulb(OTHER_PROJECT)
    a, b, cc, d, e = (pem(n) for n in ("a", "b", "c", "d", "e"))

    # CreateSSL in its two forms: UserCert + PrivateKey + CaCert, and one SSLContent bundle.
    ssl_a = c.create_ssl(
        {"SSLName": "site-a", "SSLType": "Pem", "UserCert": a["cert"], "PrivateKey": a["key"], "CaCert": a["chain"]}
    )["SSLId"]
    ssl_b = c.create_ssl({"SSLName": "site-b", "SSLContent": b["cert"] + b["key"] + b["chain"]})["SSLId"]
    ssl_c = c.create_ssl({"SSLName": "extra", "UserCert": cc["cert"], "PrivateKey": cc["key"]})["SSLId"]
    ssl_d = other.create_ssl({"SSLName": "other-site", "UserCert": d["cert"], "PrivateKey": d["key"]})["SSLId"]
    assert ssl_a.startswith("ssl-"), ssl_a

    ulb1 = c.create_ulb({"ULBName": "edge-1", "Tag": "web", "Remark": "first"})["ULBId"]
    ulb2 = c.create_ulb({"ULBName": "edge-2"})["ULBId"]
    ulb3 = other.create_ulb({"ULBName": "other-edge"})["ULBId"]
    assert ulb1.startswith("ulb-"), ulb1

    def https_vserver(client, lb, name, p):
        return client.create_vserver({"ULBId": lb, "VServerName": name, "Protocol": "HTTPS", "FrontendPort": p})[
            "VServerId"
        ]

    v1 = https_vserver(c, ulb1, "v1", port("l1"))
    # An HTTPS VServer before its first certificate: no SSLSet yet.
    before = c.describe_vserver({"ULBId": ulb1, "VServerId": v1})["DataSet"]
    assert len(before) == 1 and before[0]["SSLSet"] == [] and before[0]["Protocol"] == "HTTPS", before
    c.bind_ssl({"SSLId": ssl_a, "ULBId": ulb1, "VServerId": v1})
    v2 = https_vserver(c, ulb1, "v2", port("l2"))
    c.bind_ssl({"SSLId": ssl_a, "ULBId": ulb1, "VServerId": v2})
    v3 = https_vserver(c, ulb2, "v3", port("l3"))
    c.bind_ssl({"SSLId": ssl_a, "ULBId": ulb2, "VServerId": v3})
    # The application load balancer family: CreateListener with its default certificate,
    # then an extension certificate.
    l4 = c.create_listener(
        {
            "LoadBalancerId": ulb2,
            "ListenerProtocol": "HTTPS",
            "ListenerPort": port("l4"),
            "Name": "alb-l4",
            "Certificates": [ssl_a],
        }
    )["ListenerId"]
    c.add_ssl_binding({"LoadBalancerId": ulb2, "ListenerId": l4, "SSLIds": [ssl_c]})
    v5 = https_vserver(other, ulb3, "v5", port("l5"))
    other.bind_ssl({"SSLId": ssl_d, "ULBId": ulb3, "VServerId": v5})
    http = c.create_vserver({"ULBId": ulb1, "VServerName": "plain", "Protocol": "HTTP", "FrontendPort": port("http")})[
        "VServerId"
    ]

    # Attributes.
    c.update_vserver_attribute({"ULBId": ulb1, "VServerId": v1, "VServerName": "v1-renamed", "Method": "Source"})
    c.update_ssl_attribute({"SSLId": ssl_c, "SSLName": "extra-renamed"})

    # A certificate bound then unbound again, and deleted; a VServer and a ULB created and deleted.
    ssl_e = c.create_ssl({"SSLName": "temp", "UserCert": e["cert"], "PrivateKey": e["key"]})["SSLId"]
    c.add_ssl_binding({"LoadBalancerId": ulb2, "ListenerId": l4, "SSLIds": [ssl_e]})
    c.bind_ssl({"SSLId": ssl_e, "ULBId": ulb1, "VServerId": v2})
    c.unbind_ssl({"SSLId": ssl_e, "ULBId": ulb1, "VServerId": v2})
    c.delete_ssl_binding({"LoadBalancerId": ulb2, "ListenerId": l4, "SSLIds": [ssl_e]})
    c.delete_ssl({"SSLId": ssl_e})
    assert [s["SSLId"] for s in c.describe_ssl()["DataSet"]].count(ssl_e) == 0
    tmp_lb = c.create_ulb({"ULBName": "temp"})["ULBId"]
    tmp_vs = c.create_vserver({"ULBId": tmp_lb, "Protocol": "TCP", "FrontendPort": port("tcp")})["VServerId"]
    c.delete_vserver({"ULBId": tmp_lb, "VServerId": tmp_vs})
    assert c.describe_vserver({"ULBId": tmp_lb})["DataSet"] == []
    c.delete_ulb({"ULBId": tmp_lb})
    assert tmp_lb not in [x["ULBId"] for x in c.describe_ulb()["DataSet"]]

    # DescribeSSL: bindings of the classic family in BindedTargetSet.
    ssl = {s["SSLId"]: s for s in c.describe_ssl()["DataSet"]}
    assert set(ssl) == {ssl_a, ssl_b, ssl_c}, ssl.keys()  # ssl_d lives in the other project
    targets_a = sorted(t["VServerId"] for t in ssl[ssl_a]["BindedTargetSet"])
    assert targets_a == sorted([v1, v2, v3, l4]), targets_a
    assert ssl[ssl_a]["Domains"] == "site.example" and isinstance(ssl[ssl_a]["NotAfter"], int)
    assert ssl[ssl_c]["SSLName"] == "extra-renamed"
    assert "PRIVATE KEY" not in json.dumps(ssl)
    one = c.describe_ssl({"SSLId": ssl_b})
    assert one["TotalCount"] == 1 and one["DataSet"][0]["BindedTargetSet"] == []

    # DescribeSSLV2: Relations with IsDefault.
    v2set = {s["SSLId"]: s for s in c.describe_ssl_v2()["DataSet"]}
    rel_a = {r["ListenerId"]: r["IsDefault"] for r in v2set[ssl_a]["Relations"]}
    assert rel_a == {v1: True, v2: True, v3: True, l4: True}, rel_a
    rel_c = v2set[ssl_c]["Relations"]
    assert rel_c == [
        {"LoadBalancerId": ulb2, "LoadBalancerName": "edge-2", "ListenerId": l4, "ListenerName": "alb-l4", "IsDefault": False}
    ], rel_c

    # DescribeULB: VServerSet with each VServer's SSLSet.
    lb1 = c.describe_ulb({"ULBId": ulb1})["DataSet"][0]
    assert lb1["ULBName"] == "edge-1" and lb1["Tag"] == "web" and lb1["Remark"] == "first", lb1
    vs = {v["VServerId"]: v for v in lb1["VServerSet"]}
    assert set(vs) == {v1, v2, http}, vs.keys()
    assert vs[v1]["VServerName"] == "v1-renamed" and vs[v1]["Method"] == "Source", vs[v1]
    assert vs[v1]["FrontendPort"] == port("l1") and vs[v1]["Protocol"] == "HTTPS"
    assert [s["SSLId"] for s in vs[v1]["SSLSet"]] == [ssl_a]
    assert vs[http]["SSLSet"] == [] and vs[http]["Protocol"] == "HTTP"
    all_lbs = [x["ULBId"] for x in c.describe_ulb()["DataSet"]]
    assert sorted(all_lbs) == sorted([ulb1, ulb2]), all_lbs
    # Region is stored on load balancers: another region of the project lists none of them.
    assert ulb(region="cn-sh2").describe_ulb()["DataSet"] == []

    # The same API with a JSON body instead of a form, signed the same way.
    body = {"Action": "DescribeSSL", "Region": "cn-bj2", "ProjectId": PROJECT, "Limit": 1}
    body["Signature"] = Credential(KEY_ID, SECRET).verify_ac({k: str(v) for k, v in body.items()})
    body["PublicKey"] = KEY_ID
    answer = requests.post(ENDPOINT, json=body).json()
    assert answer["RetCode"] == 0 and answer["Action"] == "DescribeSSLResponse", answer
    assert answer["TotalCount"] == 3 and len(answer["DataSet"]) == 1, answer

    # DescribeVServer.
    dv = c.describe_vserver({"ULBId": ulb2})
    assert dv["TotalCount"] == 2 and {v["VServerId"] for v in dv["DataSet"]} == {v3, l4}, dv

    # DescribeListeners: Certificates with IsDefault.
    listeners = c.describe_listeners({"LoadBalancerId": ulb2})["Listeners"]
    by_id = {x["ListenerId"]: x for x in listeners}
    assert by_id[l4]["ListenerPort"] == port("l4") and by_id[l4]["ListenerProtocol"] == "HTTPS"
    assert by_id[l4]["Certificates"] == [{"SSLId": ssl_a, "IsDefault": True}, {"SSLId": ssl_c, "IsDefault": False}], by_id[l4]
    only = c.describe_listeners({"ListenerId": v3})
    assert only["TotalCount"] == 1 and only["Listeners"][0]["Certificates"] == [{"SSLId": ssl_a, "IsDefault": True}]

    return {
        "ssl": {"a": ssl_a, "b": ssl_b, "c": ssl_c, "d": ssl_d},
        "ulb": {"ulb1": ulb1, "ulb2": ulb2, "ulb3": ulb3},
        "listener": {"l1": v1, "l2": v2, "l3": v3, "l4": l4, "l5": v5, "http": http},
    }


def update():
    args = json.loads(os.environ["CERTBIND_UCLOUD_ARGS"])
    c = ulb()
    if args.pop("invoke", False):
        c.invoke("UpdateSSLBinding", args)
    else:
        c.update_ssl_binding(args)
    return {"ok": True}


def errors():
    ids = INPUT["ids"]
    ssl, lb, ls = ids["ssl"], ids["ulb"], ids["listener"]
    c = ulb()
    a, b = pem("a"), pem("b")
    codes = {}
    codes["bad_signature"] = code_of(lambda: ulb(private_key="not-the-secret").describe_ssl())
    codes["unknown_public_key"] = code_of(lambda: ulb(public_key="NO-SUCH-KEY").describe_ssl())
    # Not through the SDK (which always signs): a request without Signature.
    raw = requests.post(ENDPOINT, data={"Action": "DescribeSSL", "PublicKey": KEY_ID, "ProjectId": PROJECT}).json()
    assert raw["Action"] == "DescribeSSLResponse", raw
    codes["missing_signature"] = raw["RetCode"]
    codes["unknown_action"] = code_of(lambda: c.invoke("DescribeNothing", {}))
    codes["missing_param"] = code_of(lambda: c.invoke("UpdateSSLBinding", {"OldSSLId": ssl["a"]}))
    codes["invalid_param"] = code_of(
        lambda: c.create_vserver({"ULBId": lb["ulb1"], "Protocol": "FTP", "FrontendPort": port("spare")})
    )
    codes["unknown_ssl"] = code_of(
        lambda: c.bind_ssl({"SSLId": "ssl-999999", "ULBId": lb["ulb1"], "VServerId": ls["l1"]})
    )
    codes["ssl_of_other_project"] = code_of(
        lambda: c.bind_ssl({"SSLId": ssl["d"], "ULBId": lb["ulb1"], "VServerId": ls["l1"]})
    )
    codes["unknown_ulb"] = code_of(lambda: c.describe_ulb({"ULBId": "ulb-999999"}))
    codes["unknown_vserver"] = code_of(
        lambda: c.bind_ssl({"SSLId": ssl["b"], "ULBId": lb["ulb1"], "VServerId": "vserver-999999"})
    )
    codes["vserver_of_other_ulb"] = code_of(
        lambda: c.bind_ssl({"SSLId": ssl["b"], "ULBId": lb["ulb1"], "VServerId": ls["l3"]})
    )
    codes["certificate_unparseable"] = code_of(
        lambda: c.create_ssl({"SSLName": "bad", "UserCert": "not a certificate", "PrivateKey": a["key"]})
    )
    codes["key_mismatch"] = code_of(
        lambda: c.create_ssl({"SSLName": "mismatch", "UserCert": a["cert"], "PrivateKey": b["key"]})
    )
    codes["bind_to_http_vserver"] = code_of(
        lambda: c.bind_ssl({"SSLId": ssl["b"], "ULBId": lb["ulb1"], "VServerId": ls["http"]})
    )
    codes["ownership_mismatch"] = code_of(
        lambda: c.update_ssl_binding(
            {"OldSSLId": ssl["a"], "NewSSLId": ssl["b"], "LoadBalancerId": lb["ulb1"], "ListenerId": ls["l3"]}
        )
    )
    codes["old_not_bound_in_scope"] = code_of(
        lambda: c.update_ssl_binding({"OldSSLId": ssl["c"], "NewSSLId": ssl["b"], "ListenerId": ls["l1"]})
    )
    codes["delete_bound_ssl"] = code_of(lambda: c.delete_ssl({"SSLId": ssl["a"]}))
    codes["unbind_default"] = code_of(
        lambda: c.unbind_ssl({"SSLId": ssl["a"], "ULBId": lb["ulb1"], "VServerId": ls["l1"]})
    )
    codes["port_in_use"] = code_of(
        lambda: c.create_vserver({"ULBId": lb["ulb1"], "Protocol": "HTTPS", "FrontendPort": port("l1")})
    )
    # Nothing above changed anything.
    rel = {r["ListenerId"] for r in c.describe_ssl_v2({"SSLId": ssl["a"]})["DataSet"][0]["Relations"]}
    assert rel == {ls["l1"], ls["l2"], ls["l3"], ls["l4"]}, rel
    assert c.describe_ssl()["TotalCount"] == 3
    return codes


PHASES = {"setup": setup, "update": update, "errors": errors}
print(json.dumps(PHASES[os.environ["CERTBIND_UCLOUD_PHASE"]]()))
