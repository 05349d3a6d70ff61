"""Settings: typed, from the environment, secrets hidden, bad values named by their variable."""

from __future__ import annotations

import ssl

import pytest
from redis.connection import SSLConnection

from config.celery import celery_config
from config.settings import SettingsError, load_settings, redis_nodes, without_password
from worker.broker import SentinelChannel
from worker.data.connection import FollowingConnection, FollowingSSLConnection, connect, redis_target

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("IMSREP_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
    # The tests of other settings name Redis servers without a password; the tests of that rule unset this.
    monkeypatch.setenv("IMSREP_REDIS_ALLOW_NO_PASSWORD", "true")
    monkeypatch.chdir(tmp_path)  # no stray .env


def _aksk(monkeypatch: pytest.MonkeyPatch, name: str = "DEFAULT") -> None:
    monkeypatch.setenv(f"IMSREP_ACCOUNTS__{name}__PROJECT_ID", PROJECT)
    monkeypatch.setenv(f"IMSREP_ACCOUNTS__{name}__ACCESS_KEY", "AK-FROM-ENV")
    monkeypatch.setenv(f"IMSREP_ACCOUNTS__{name}__SECRET_KEY", "SK-FROM-ENV-SECRET")


def test_accounts_from_flat_env_with_real_endpoint_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _aksk(monkeypatch)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__REGION", "ap-southeast-1")
    settings = load_settings()
    account = settings.account()
    assert settings.default_account == "default"
    assert account.ims_endpoint == "https://ims.ap-southeast-1.myhuaweicloud.com"
    assert account.kms_endpoint == "https://kms.ap-southeast-1.myhuaweicloud.com"
    assert account.iam_endpoint == "https://iam.ap-southeast-1.myhuaweicloud.com"
    assert account.slot_limit == 5
    assert "SK-FROM-ENV-SECRET" not in repr(settings) and "SK-FROM-ENV-SECRET" not in str(account)
    assert account.secret_key.get_secret_value() == "SK-FROM-ENV-SECRET"


def test_several_accounts_and_explicit_default(monkeypatch: pytest.MonkeyPatch) -> None:
    _aksk(monkeypatch, "PROD")
    _aksk(monkeypatch, "STAGING")
    monkeypatch.setenv("IMSREP_DEFAULT_ACCOUNT", "staging")
    settings = load_settings()
    assert set(settings.accounts) == {"prod", "staging"}
    assert settings.account().project_id == PROJECT and settings.default_account == "staging"


def test_redis_url_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6380/2")
    assert load_settings().redis_url == "redis://example:6380/2"


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("IMSREP_POLL_MIN_INTERVAL", "soon", "IMSREP_POLL_MIN_INTERVAL"),
        ("IMSREP_MAX_BATCH_ITEMS", "0", "IMSREP_MAX_BATCH_ITEMS"),
        ("IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID", "not-hex", "IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID"),
        ("IMSREP_ACCOUNTS__DEFAULT__REGION", "Moon Base", "IMSREP_ACCOUNTS__DEFAULT__REGION"),
        ("IMSREP_LOG_LEVEL", "LOUD", "IMSREP_LOG_LEVEL"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str) -> None:
    _aksk(monkeypatch)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert named in str(info.value)


def test_credentials_must_be_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID", PROJECT)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY", "AK")
    with pytest.raises(SettingsError, match="IMSREP_ACCOUNTS__DEFAULT.*secret_key"):
        load_settings()


def test_iam_password_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID", PROJECT)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__IAM_USER", "ops")
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__IAM_PASSWORD", "pw-very-secret")
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__IAM_DOMAIN", "acme")
    account = load_settings().account()
    assert account.access_key is None and account.secret_values() == ["pw-very-secret"]


def test_weak_secrets_refused_outside_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_API_TOKENS", "demo")
    with pytest.raises(SettingsError, match="IMSREP_API_TOKENS"):
        load_settings()
    monkeypatch.setenv("IMSREP_DEMO", "true")
    assert [t.get_secret_value() for t in load_settings().api_tokens] == ["demo"]


def test_tokens_are_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_API_TOKENS", "tok-aaaaaaaa, tok-bbbbbbbb")
    assert [t.get_secret_value() for t in load_settings().api_tokens] == ["tok-aaaaaaaa", "tok-bbbbbbbb"]


def test_visibility_timeout_must_cover_countdowns_and_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_VISIBILITY_TIMEOUT", "60")
    with pytest.raises(SettingsError, match="IMSREP_VISIBILITY_TIMEOUT"):
        load_settings()


def test_celery_config_sets_visibility_timeout_everywhere() -> None:
    settings = load_settings(visibility_timeout=900)
    conf = celery_config(settings)
    assert conf["broker_transport_options"]["visibility_timeout"] == 900
    assert conf["result_backend_transport_options"]["visibility_timeout"] == 900
    assert conf["visibility_timeout"] == 900
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["worker_send_task_events"] and conf["task_send_sent_event"]


def test_the_soft_shutdown_lasts_as_long_as_the_settings_say() -> None:
    assert celery_config(load_settings())["worker_soft_shutdown_timeout"] == 10.0
    assert celery_config(load_settings(worker_soft_shutdown_seconds=2))["worker_soft_shutdown_timeout"] == 2
    with pytest.raises(SettingsError, match="IMSREP_WORKER_SOFT_SHUTDOWN_SECONDS"):
        load_settings(worker_soft_shutdown_seconds=0)


def test_secret_values_cover_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    _aksk(monkeypatch)
    monkeypatch.setenv("IMSREP_API_TOKENS", "tok-123456789")
    monkeypatch.setenv("IMSREP_FLOWER_PASSWORD", "flower-pass-9")
    monkeypatch.setenv("IMSREP_REDIS_PASSWORD", "redis-pass-1")
    monkeypatch.setenv("IMSREP_REDIS_SENTINEL_PASSWORD", "sentinel-pass-2")
    assert set(load_settings().secret_values()) == {
        "AK-FROM-ENV",
        "SK-FROM-ENV-SECRET",
        "tok-123456789",
        "flower-pass-9",
        "redis-pass-1",
        "sentinel-pass-2",
    }
    monkeypatch.delenv("IMSREP_REDIS_PASSWORD")
    monkeypatch.setenv("IMSREP_REDIS_URL", "redis://:url-pass-3@example:6379/0")
    assert "url-pass-3" in load_settings().secret_values()


SENTINELS = "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2"


def test_a_redis_without_a_password_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMSREP_REDIS_ALLOW_NO_PASSWORD")
    monkeypatch.setenv("IMSREP_REDIS_URL", "redis://redis.internal:6379/0")
    with pytest.raises(SettingsError, match="IMSREP_REDIS_PASSWORD: required, as anyone who reaches a Redis"):
        load_settings()
    assert load_settings(redis_password="a-password").redis_password is not None
    assert load_settings(redis_url="redis://:in-url@redis.internal:6379/0")
    assert load_settings(redis_allow_no_password=True) and load_settings(demo=True)  # said so, or the demo
    monkeypatch.delenv("IMSREP_REDIS_URL")
    assert load_settings()  # no Redis configured: imsrep up's own, which it locks itself
    monkeypatch.setenv("IMSREP_REDIS_URL", SENTINELS)
    monkeypatch.setenv("IMSREP_REDIS_SENTINEL_MASTER", "imsrep")
    monkeypatch.setenv("IMSREP_REDIS_PASSWORD", "a-password")
    with pytest.raises(
        SettingsError, match="IMSREP_REDIS_SENTINEL_PASSWORD: required, as anyone who reaches a Sentinel"
    ):
        load_settings()
    assert load_settings(redis_sentinel_password="another-password")


def test_passwords_from_files_and_their_mistakes(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("IMSREP_REDIS_ALLOW_NO_PASSWORD")
    (tmp_path / "redis").write_text("from-a-file-1\n")  # as echo, or a Docker secret, leaves it
    (tmp_path / "sentinel").write_text("from-a-file-2")
    monkeypatch.setenv("IMSREP_REDIS_URL", SENTINELS)
    monkeypatch.setenv("IMSREP_REDIS_SENTINEL_MASTER", "imsrep")
    monkeypatch.setenv("IMSREP_REDIS_PASSWORD_FILE", str(tmp_path / "redis"))
    monkeypatch.setenv("IMSREP_REDIS_SENTINEL_PASSWORD_FILE", str(tmp_path / "sentinel"))
    settings = load_settings()
    assert settings.redis_password.get_secret_value() == "from-a-file-1"
    assert settings.redis_sentinel_password.get_secret_value() == "from-a-file-2"
    assert {"from-a-file-1", "from-a-file-2"} <= set(settings.secret_values())
    assert settings.model_validate(settings.model_dump()) == settings  # read once: the copy holds no file
    monkeypatch.setenv("IMSREP_REDIS_PASSWORD", "again")
    with pytest.raises(SettingsError, match="IMSREP_REDIS_PASSWORD_FILE: give the secret once"):
        load_settings()
    monkeypatch.delenv("IMSREP_REDIS_PASSWORD")
    (tmp_path / "redis").write_text("\n")
    with pytest.raises(SettingsError, match=f"IMSREP_REDIS_PASSWORD_FILE: {tmp_path / 'redis'} is empty"):
        load_settings()
    monkeypatch.setenv("IMSREP_REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="IMSREP_REDIS_PASSWORD_FILE: cannot read .*missing .FileNotFoundError"):
        load_settings()


def test_a_redis_url_to_print_has_no_password() -> None:
    assert without_password("redis://:pw-1@h:6380/2") == "redis://h:6380/2"
    assert without_password("rediss://user:pw-1@h/0") == "rediss://user@h/0"
    assert without_password("sentinel://:pw-2@a:1;sentinel://b:2/0") == "sentinel://a:1;sentinel://b:2/0"
    assert without_password("unix:///run/redis.sock") == "unix:///run/redis.sock"


def test_a_sentinel_url_lists_the_sentinels_and_needs_the_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_REDIS_URL", SENTINELS)
    with pytest.raises(SettingsError, match="IMSREP_REDIS_SENTINEL_MASTER: is required"):
        load_settings()
    monkeypatch.setenv("IMSREP_REDIS_SENTINEL_MASTER", "imsrep")
    nodes = redis_nodes(load_settings().redis_url)
    assert nodes.sentinel and nodes.db == 2
    assert nodes.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379))


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://example:6379/0", "must be redis://host:port/db"),
        ("sentinel://h1:26379;redis://h2:6379", "a Sentinel URL lists sentinel://host:port entries"),
        ("redis://example:6379/zero", "the database must be a number"),
    ],
)
def test_a_bad_redis_url_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch, url: str, rule: str) -> None:
    monkeypatch.setenv("IMSREP_REDIS_URL", url)
    with pytest.raises(SettingsError, match=f"IMSREP_REDIS_URL: {rule}"):
        load_settings()


def test_a_redis_password_is_given_once_and_the_replica_wait_is_below_the_socket_timeout(monkeypatch) -> None:
    monkeypatch.setenv("IMSREP_REDIS_URL", "redis://:in-url@example:6379/0")
    monkeypatch.setenv("IMSREP_REDIS_PASSWORD", "again")
    with pytest.raises(SettingsError, match="give the password once"):
        load_settings()
    monkeypatch.delenv("IMSREP_REDIS_PASSWORD")
    monkeypatch.setenv("IMSREP_REDIS_REPLICA_TIMEOUT", "5")
    monkeypatch.setenv("IMSREP_REDIS_SOCKET_TIMEOUT", "5")
    with pytest.raises(SettingsError, match="IMSREP_REDIS_REPLICA_TIMEOUT must be below IMSREP_REDIS_SOCKET_TIMEOUT"):
        load_settings()


def test_every_celery_app_reaches_the_broker_the_data_layer_reaches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_REDIS_URL", SENTINELS)
    monkeypatch.setenv("IMSREP_REDIS_SENTINEL_MASTER", "imsrep")
    monkeypatch.setenv("IMSREP_REDIS_PASSWORD", "redis-pass-1")
    monkeypatch.setenv("IMSREP_REDIS_SENTINEL_PASSWORD", "sentinel-pass-2")
    monkeypatch.setenv("IMSREP_REDIS_SOCKET_TIMEOUT", "3")
    conf = celery_config(load_settings())
    options = conf["broker_transport_options"]
    assert conf["broker_transport"] == "worker.broker:SentinelTransport" and conf["broker_url"] == SENTINELS
    assert options["master_name"] == "imsrep" and options["socket_timeout"] == 3
    sentinel_kwargs = {"socket_timeout": 3, "socket_connect_timeout": 2.0, "password": "sentinel-pass-2"}
    assert sentinel_kwargs.items() <= options["sentinel_kwargs"].items()
    assert options["sentinel_kwargs"]["retry"].get_retries() == 0  # a silent Sentinel is skipped for the next
    assert conf["broker_password"] == "redis-pass-1" and "redis-pass-1" not in conf["broker_url"]
    assert conf["broker_channel_error_retry"]  # a refused broker write restarts the consumer, never the worker
    plain = celery_config(load_settings(redis_url="redis://example:6379/0", redis_password=None))
    assert plain["broker_transport"] == "worker.broker:Transport"
    assert "master_name" not in plain["broker_transport_options"]


def test_destination_regions_from_the_environment_and_their_defaults(monkeypatch) -> None:
    """A region key cannot hold '-' in an environment variable's name: CN_SOUTH_1 is cn-south-1. IMS defaults to
    Huawei's endpoint of that region, IAM (global) to the account's own."""
    prefix = "IMSREP_ACCOUNTS__DEFAULT__"
    monkeypatch.setenv(f"{prefix}PROJECT_ID", "a" * 32)
    monkeypatch.setenv(f"{prefix}ACCESS_KEY", "AKSETTINGS1")
    monkeypatch.setenv(f"{prefix}SECRET_KEY", "SKSETTINGS1")
    monkeypatch.setenv(f"{prefix}AGENCY_NAME", "ims_admin_agency")
    monkeypatch.setenv(f"{prefix}REGIONS__CN_SOUTH_1__IMS_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv(f"{prefix}REGIONS__CN_SOUTH_1__PROJECT_ID", "b" * 32)
    account = load_settings(demo=True).accounts["default"]
    assert account.agency_name == "ims_admin_agency" and account.cross_region_slot_limit == 5
    assert account.regions["cn-south-1"].project_id == "b" * 32
    assert account.region_endpoints("cn-south-1") == ("http://127.0.0.1:9", account.iam_endpoint)
    assert account.region_endpoints("ap-southeast-1")[0] == "https://ims.ap-southeast-1.myhuaweicloud.com"
    south = account.in_region("cn-south-1", "b" * 32)
    assert (south.region, south.project_id, south.ims_endpoint) == ("cn-south-1", "b" * 32, "http://127.0.0.1:9")
    assert south.access_key == account.access_key and south.regions == {}
    monkeypatch.setenv(f"{prefix}REGIONS__NOWHERE__IMS_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(SettingsError, match="region 'nowhere'"):
        load_settings(demo=True)


def test_every_secret_also_reads_a_file_as_docker_secrets_mount_them(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    files = {
        "IMSREP_FLOWER_PASSWORD_FILE": "a-long-flower-password\n",  # a trailing line break is not part of it
        "IMSREP_API_TOKENS_FILE": "first-token-aaaa,second-token-bbbb\n",
        "IMSREP_REDIS_PASSWORD_FILE": "redis-secret-from-file",
        "IMSREP_ACCOUNTS__PROD__SECRET_KEY_FILE": "SK-FROM-A-FILE\r\n",
        "IMSREP_PRINCIPALS__WEB__TOKEN_FILE": "web-team-token-from-file",
    }
    for variable, content in files.items():
        (tmp_path / variable).write_text(content)
        monkeypatch.setenv(variable, str(tmp_path / variable))
    monkeypatch.setenv("IMSREP_ACCOUNTS__PROD__PROJECT_ID", PROJECT)
    monkeypatch.setenv("IMSREP_ACCOUNTS__PROD__ACCESS_KEY", "AK-FROM-ENV")
    monkeypatch.setenv("IMSREP_PRINCIPALS__WEB__ACCOUNTS", "prod")
    settings = load_settings()
    assert settings.flower_password.get_secret_value() == "a-long-flower-password"
    assert [t.get_secret_value() for t in settings.api_tokens] == ["first-token-aaaa", "second-token-bbbb"]
    assert settings.redis_password.get_secret_value() == "redis-secret-from-file"
    assert settings.accounts["prod"].secret_key.get_secret_value() == "SK-FROM-A-FILE"
    # Where it came from, for the worker to read again when it changes (worker.ims.credentials.FileCredentials).
    secret_file = tmp_path / "IMSREP_ACCOUNTS__PROD__SECRET_KEY_FILE"
    assert settings.accounts["prod"].secret_files == {"secret_key": secret_file}
    assert settings.accounts["prod"].in_region("cn-south-1", "b" * 32).secret_files == {"secret_key": secret_file}
    assert settings.principals["web"].token.get_secret_value() == "web-team-token-from-file"
    assert "SK-FROM-A-FILE" in settings.secret_values()


def test_a_secret_given_twice_or_in_an_unreadable_file_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    secret = tmp_path / "flower"
    secret.write_text("a-long-flower-password")
    monkeypatch.setenv("IMSREP_FLOWER_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("IMSREP_FLOWER_PASSWORD", "another-long-password")
    with pytest.raises(SettingsError, match="IMSREP_FLOWER_PASSWORD_FILE: give the secret once"):
        load_settings()
    monkeypatch.delenv("IMSREP_FLOWER_PASSWORD")
    monkeypatch.setenv("IMSREP_FLOWER_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="IMSREP_FLOWER_PASSWORD_FILE: cannot read .*missing"):
        load_settings()


def test_a_file_setting_that_is_no_secret_keeps_its_meaning(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("IMSREP_PRINCIPALS_FILE", str(tmp_path / "principals.toml"))  # a path, not a secret's file
    assert load_settings().principals_file == tmp_path / "principals.toml"


def test_guardrails_from_the_environment_are_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    _aksk(monkeypatch, "PROD")
    prefix = "IMSREP_ACCOUNTS__PROD__"
    monkeypatch.setenv(f"{prefix}SHARE_PROJECTS", f"{'b' * 32}, {'c' * 32},")
    monkeypatch.setenv(f"{prefix}COPY_REGIONS", "cn-south-1,ap-southeast-1")
    monkeypatch.setenv(f"{prefix}ALLOW_DECRYPT", "false")
    account = load_settings().accounts["prod"]
    assert account.share_projects == ["b" * 32, "c" * 32]
    assert account.copy_regions == ["cn-south-1", "ap-southeast-1"] and account.allow_decrypt is False
    monkeypatch.setenv(f"{prefix}SHARE_PROJECTS", "*")
    monkeypatch.setenv(f"{prefix}COPY_REGIONS", "*")
    account = load_settings().accounts["prod"]
    assert (account.share_projects, account.copy_regions) == (["*"], ["*"])


def test_guardrails_default_to_no_sharing_configured_regions_and_decryption_allowed(monkeypatch) -> None:
    _aksk(monkeypatch)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__SHARE_PROJECTS", "")  # empty: ignored, the default
    account = load_settings().account()
    assert (account.share_projects, account.copy_regions, account.allow_decrypt) == ([], None, True)


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("SHARE_PROJECTS", "ABCDEF0123456789ABCDEF0123456789", "must be a project ID of 32 lowercase hex characters"),
        ("SHARE_PROJECTS", "0123", "must be a project ID"),
        ("SHARE_PROJECTS", f"{'b' * 32},*", "'*' allows any and must stand alone"),
        ("COPY_REGIONS", "cn_south_1", "must be a region ID such as cn-south-1"),
        ("COPY_REGIONS", "*,cn-south-1", "'*' allows any and must stand alone"),
        ("ALLOW_DECRYPT", "perhaps", "valid boolean"),
    ],
)
def test_a_bad_guardrail_names_the_variable_and_the_rule(monkeypatch, name: str, value: str, rule: str) -> None:
    _aksk(monkeypatch)
    monkeypatch.setenv(f"IMSREP_ACCOUNTS__DEFAULT__{name}", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert f"IMSREP_ACCOUNTS__DEFAULT__{name}: " in str(info.value) and rule in str(info.value)


def test_a_temporary_ak_sk_carries_its_security_token(monkeypatch: pytest.MonkeyPatch) -> None:
    _aksk(monkeypatch)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__SECURITY_TOKEN", "security-token-from-env")
    settings = load_settings()
    assert "security-token-from-env" in settings.secret_values()
    assert "security-token-from-env" not in repr(settings)


def test_a_security_token_needs_its_ak_sk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID", PROJECT)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__SECURITY_TOKEN", "security-token-from-env")
    with pytest.raises(SettingsError, match="IMSREP_ACCOUNTS__DEFAULT.*security_token goes with"):
        load_settings()


def test_metadata_credentials_take_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID", PROJECT)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__CREDENTIALS_SOURCE", "metadata")
    account = load_settings().account()
    assert account.metadata_endpoint == "http://169.254.169.254" and account.has_credentials
    load_settings().require_credentials()
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__METADATA_ENDPOINT", "http://127.0.0.1:8780/")
    assert load_settings().account().metadata_endpoint == "http://127.0.0.1:8780"
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY", "AK")
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__SECRET_KEY", "SK-SECRET-1234")
    with pytest.raises(SettingsError, match="credentials_source=metadata takes"):
        load_settings()


def test_an_account_without_credentials_is_valid_until_credentials_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API reads accounts without credentials (names and limits); the workers and imsrep up require them."""
    _aksk(monkeypatch, "PROD")
    monkeypatch.setenv("IMSREP_ACCOUNTS__NAMES_ONLY__PROJECT_ID", PROJECT)
    monkeypatch.setenv("IMSREP_ACCOUNTS__NAMES_ONLY__REGION", "cn-south-1")
    settings = load_settings()
    assert not settings.account("names_only").has_credentials and settings.account("prod").has_credentials
    with pytest.raises(SettingsError) as info:
        settings.require_credentials()
    message = str(info.value)
    assert "'names_only'" in message and "'prod'" not in message
    for variable in ("ACCESS_KEY", "SECRET_KEY", "SECURITY_TOKEN", "IAM_USER", "CREDENTIALS_SOURCE=metadata"):
        assert f"IMSREP_ACCOUNTS__NAMES_ONLY__{variable}" in message


def test_tls_checks_the_servers_certificate_against_the_ca_given(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(SettingsError, match="IMSREP_REDIS_TLS_CA_FILE: is for TLS, which needs a rediss://"):
        load_settings(redis_url="redis://example:6379/0", redis_tls_ca_file=ca)
    with pytest.raises(SettingsError, match="IMSREP_REDIS_TLS_CA_FILE: Path does not point to a file"):
        load_settings(redis_url="rediss://example:6379/0", redis_tls_ca_file=tmp_path / "missing.crt")
    settings = load_settings(redis_url="rediss://example:6379/0", redis_tls_ca_file=ca)
    tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(ca), "ssl_check_hostname": True}
    assert celery_config(settings)["broker_use_ssl"] == tls  # the broker, and Flower's Broker tab, which reads it
    pool = connect(redis_target(settings)).connection_pool
    assert pool.connection_class is SSLConnection and tls.items() <= pool.connection_kwargs.items()
    assert celery_config(load_settings(redis_url="redis://example:6379/0"))["broker_use_ssl"] is None


def test_tls_through_sentinel_reaches_the_sentinels_and_the_servers_they_name(tmp_path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(SettingsError, match="IMSREP_REDIS_SENTINEL_TLS: is for a sentinel://"):
        load_settings(redis_url="redis://example:6379/0", redis_sentinel_tls=True, redis_allow_no_password=True)
    url = "sentinel://s1:26379;sentinel://s2:26379/0"
    settings = load_settings(
        redis_url=url, redis_sentinel_master="imsrep", redis_sentinel_tls=True, redis_tls_ca_file=ca, demo=True
    )
    tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(ca), "ssl_check_hostname": True}
    broker = celery_config(settings)
    assert broker["broker_use_ssl"] == tls  # the master's connections (kombu: connection_class_ssl)
    assert {"ssl": True, **tls}.items() <= broker["broker_transport_options"]["sentinel_kwargs"].items()
    assert SentinelChannel.connection_class_ssl is FollowingSSLConnection
    pool = connect(redis_target(settings)).connection_pool
    assert pool.connection_class is FollowingSSLConnection and tls.items() <= pool.connection_kwargs.items()
    sentinels = pool.sentinel_manager.sentinels
    assert all(s.connection_pool.connection_class is SSLConnection for s in sentinels)
    assert all(tls.items() <= s.connection_pool.connection_kwargs.items() for s in sentinels)
    plain = connect(redis_target(load_settings(redis_url=url, redis_sentinel_master="imsrep", demo=True)))
    assert plain.connection_pool.connection_class is FollowingConnection
