"""The UCloud ULB client pointed at the certbind under test, exactly as a user would
configure the official SDK, in the account's default project (UCLOUD_PROJECT)."""

import os

from ucloud.client import Client


def ulb(project=None, region="cn-bj2"):
    E = os.environ
    return Client({
        "region": region,
        "project_id": project or E["UCLOUD_PROJECT"],
        "public_key": E["CERTBIND_ACCESS_KEY_ID"],
        "private_key": E["CERTBIND_ACCESS_KEY_SECRET"],
        "base_url": E["CERTBIND_ENDPOINT"],
    }).ulb()
