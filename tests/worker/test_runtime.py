"""The per-process pieces: one ImsClient per account, reused, all sharing one HTTP connection pool."""

from __future__ import annotations

from config.settings import AccountSettings, load_settings
from worker.data import open_data_layer
from worker.runtime import AccountClients


def test_clients_are_built_once_per_account_and_share_one_connection_pool() -> None:
    accounts = {
        name: AccountSettings(project_id=str(i) * 32, access_key="ak12", secret_key="sk12")
        for i, name in enumerate(("one", "two"))
    }
    settings = load_settings(accounts=accounts)
    clients = AccountClients(settings, open_data_layer("redis://127.0.0.1:1/0", "t"))
    try:
        assert clients("one") is clients("one")
        assert clients("one") is not clients("two")
        assert clients("one")._http is clients("two")._http is not None
    finally:
        clients.close()
