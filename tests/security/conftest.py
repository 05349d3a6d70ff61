"""A stack whose every secret is known, for the leak scan: the simulator's AK/SK account ``default`` (read from the
files of its ``…_FILE`` settings, as Docker secrets give them), ``sts`` whose
temporary AK/SK and security token come from the metadata service (renewed every few seconds), an IAM-password
account ``iam`` (tokens from the simulator's IAM), and ``badiam`` whose password IAM refuses; Redis under Sentinel, so
that the passwords the stack made for its servers and its Sentinels are looked for too.

All four use the simulator's one project; their slot limits add up to its 5 jobs (badiam never gets a job).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cli.processes import free_port
from cli.services import SIMULATOR_PROJECT_ID
from cli.stack import DISCARD_STOP_GRACE, HOST, LocalStack, SentinelSpec, StackInfo, StackOptions
from tests.support import fast_env

IAM_USER, IAM_DOMAIN = "ops-user", "ops-domain"


@dataclass
class SecretStack:
    local: LocalStack
    info: StackInfo
    iam_password: str
    wrong_iam_password: str
    role_tokens: dict[str, str]  # by role, principals of every account (the admin's is info.api_token)


def _iam_account(name: str, sim_url: str, password: str, slot_limit: int) -> dict[str, str]:
    prefix = f"IMSREP_ACCOUNTS__{name.upper()}__"
    values = {
        "REGION": "cn-north-4", "PROJECT_ID": SIMULATOR_PROJECT_ID, "IMS_ENDPOINT": sim_url, "KMS_ENDPOINT": sim_url,
        "IAM_ENDPOINT": sim_url, "IAM_USER": IAM_USER, "IAM_PASSWORD": password, "IAM_DOMAIN": IAM_DOMAIN,
        "SLOT_LIMIT": str(slot_limit),
    }  # fmt: skip
    return {prefix + key: value for key, value in values.items()}


def _metadata_account(name: str, sim_url: str) -> dict[str, str]:
    """An account whose temporary AK/SK and security token come from the (simulated) ECS metadata service."""
    prefix = f"IMSREP_ACCOUNTS__{name.upper()}__"
    values = {
        "REGION": "cn-north-4", "PROJECT_ID": SIMULATOR_PROJECT_ID, "IMS_ENDPOINT": sim_url, "KMS_ENDPOINT": sim_url,
        "IAM_ENDPOINT": sim_url, "CREDENTIALS_SOURCE": "metadata", "METADATA_ENDPOINT": sim_url, "SLOT_LIMIT": "1",
    }  # fmt: skip
    return {prefix + key: value for key, value in values.items()}


@pytest.fixture(scope="session")
def secret_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretStack]:
    sim_port = free_port(HOST)
    sim_url = f"http://{HOST}:{sim_port}"
    password, wrong = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    roles = {role: secrets.token_urlsafe(24) for role in ("reader", "submitter", "operator")}
    principals = {
        f"IMSREP_PRINCIPALS__{role.upper()}__{field}": value
        for role, token in roles.items()
        for field, value in (("TOKEN", token), ("ROLE", role), ("ACCOUNTS", "*"))
    }
    files = tmp_path_factory.mktemp("secret-files")  # not in the state directory, whose every file is scanned
    credential_files = {"ACCESS_KEY": files / "access-key", "SECRET_KEY": files / "secret-key"}
    env = {
        **fast_env(),
        **principals,
        "IMSREP_ACCOUNTS__DEFAULT__SLOT_LIMIT": "2",
        **{f"IMSREP_ACCOUNTS__DEFAULT__{name}": None for name in credential_files},  # the simulator's, replaced by:
        **{f"IMSREP_ACCOUNTS__DEFAULT__{name}_FILE": str(path) for name, path in credential_files.items()},
        **_metadata_account("sts", sim_url),
        **_iam_account("iam", sim_url, password, 2),
        **_iam_account("badiam", sim_url, wrong, 1),
    }
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("secret-stack"),
        ports={"redis": 0, "api": 0, "flower": 0, "simulator": sim_port},
        use_simulator=True,
        simulator={
            "copy_seconds": 2,
            "image_quota": 100_000,
            "iam_user": IAM_USER,
            "iam_password": password,
            "iam_domain": IAM_DOMAIN,
            "temporary_credentials_seconds": 6,  # renewed while the scan's batch runs
        },  # fmt: skip
        env=env,  # type: ignore[arg-type]  # None removes a variable
        sentinel=SentinelSpec(),
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as local:
        credential_files["ACCESS_KEY"].write_text(local.info.simulator_access_key + "\n")
        credential_files["SECRET_KEY"].write_text(local.info.simulator_secret_key + "\n")
        yield SecretStack(local, local.start(), password, wrong, roles)
