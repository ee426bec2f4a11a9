"""Secret stores beyond the environment: the CDK's BaseSecretStore and FileSecretStore
(management of .env, JSON and TOML files), the encrypted-file store (AES-256-GCM under
scrypt), the keyring store against a backend set here, the configuration's view of them,
and `modelmesh secrets set|get|list|delete`. No value ever shows in an error or a repr."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelmesh import errors as E
from modelmesh._core._config_schema import SecretsConfig
from modelmesh.cdk import BaseSecretStore, FileSecretStore, SecretStoreError
from modelmesh.cli import main
from modelmesh.connectors.secrets import (
    EncryptedFileSecretStore,
    EnvSecretStore,
    KeyringSecretStore,
    MemorySecretStore,
    make_secret_store,
)

SECRET = "sk-stored-secret-0123456789"
OTHER = "sk-other-secret-9876543210"
PASS = "correct horse battery staple"


# -- the CDK base --------------------------------------------------------------------------------

class UpperStore(BaseSecretStore):
    """A read-only store: only `_resolve` is written."""

    def _resolve(self, name: str) -> str | None:
        return f"value-of-{name}" if name.isupper() else None


def test_a_store_that_only_resolves_is_read_only_and_says_so() -> None:
    store = UpperStore()
    assert store.get("api-key") == "value-of-API_KEY" and not store.writable
    for call in (lambda: store.set("x", SECRET), lambda: store.delete("x"), store.list):
        with pytest.raises(SecretStoreError) as info:
            call()
        assert "UpperStore()" in str(info.value) and SECRET not in str(info.value)
    assert "read-only" in str(pytest.raises(SecretStoreError, store.set, "x", SECRET).value)
    assert "read-only" in str(pytest.raises(SecretStoreError, EnvSecretStore({}).set, "x", SECRET).value)


def test_a_writable_store_caches_and_forgets_on_write() -> None:
    store = MemorySecretStore({"a": "1"})
    assert store.writable and store.get("a") == "1"
    store.set("a", "2")
    assert store.get("a") == "2" and store.list() == ("a",)
    assert store.delete("a") and not store.delete("a") and store.get("a") is None
    with pytest.raises(ValueError):
        store.set("b", "")


# -- file stores ----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".env", ".json", ".toml"])
def test_a_file_store_sets_lists_and_deletes_in_its_own_format(tmp_path: Path, suffix: str) -> None:
    if suffix == ".toml" and sys.version_info < (3, 11):
        pytest.skip("TOML files need Python 3.11")
    path = tmp_path / f"secrets{suffix}"
    store = FileSecretStore(path, create=True, cache_enabled=False)
    store.set("openai-key", SECRET)
    store.set("quoted", 'a "tricky" \\ value\nwith a newline')
    assert path.stat().st_mode & 0o777 == 0o600  # made readable by its owner only
    again = FileSecretStore(path)
    assert again.get("openai-key") == SECRET and again.get("quoted") == 'a "tricky" \\ value\nwith a newline'
    assert again.list() == ("openai-key", "quoted")
    assert again.delete("openai-key") and not again.delete("openai-key")
    assert FileSecretStore(path).list() == ("quoted",)
    assert SECRET not in path.read_text() and SECRET not in repr(again)


def test_a_dotenv_file_keeps_its_comments_and_other_lines(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# keys for staging\nexport A=1\nB='two'\n")
    store = FileSecretStore(path)
    store.set("A", "changed")
    store.set("C", "three")
    text = path.read_text()
    assert text.startswith("# keys for staging\n") and "B='two'" in text
    assert store.get("A") == "changed" and store.get("C") == "three" and store.get("B") == "two"


def test_a_json_file_keeps_its_nesting(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"openai": {"key": "old"}, "plain": "x"}))
    store = FileSecretStore(path)
    store.set("openai.key", SECRET)
    assert json.loads(path.read_text()) == {"openai": {"key": SECRET}, "plain": "x"}
    assert store.get("openai.key") == SECRET


# -- the encrypted file -----------------------------------------------------------------------------

def test_the_encrypted_file_round_trips_and_holds_no_value_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    store = EncryptedFileSecretStore(path, PASS, create=True)
    store.set("openai-key", SECRET)
    store.set("other", OTHER)
    raw = path.read_text()
    doc = json.loads(raw)
    assert doc["format"] == "modelmesh-secrets" and doc["version"] == 1 and doc["kdf"]["name"] == "scrypt"
    assert doc["cipher"] == "AES-256-GCM" and SECRET not in raw and "openai-key" not in raw
    reopened = EncryptedFileSecretStore(path, PASS)
    assert reopened.get("openai-key") == SECRET and reopened.list() == ("openai-key", "other")
    assert reopened.delete("other") and EncryptedFileSecretStore(path, PASS).list() == ("openai-key",)
    assert SECRET not in repr(reopened) and PASS not in repr(reopened)


def test_a_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    EncryptedFileSecretStore(path, PASS, create=True).set("k", SECRET)
    with pytest.raises(SecretStoreError) as info:
        EncryptedFileSecretStore(path, "not the passphrase")
    assert "wrong passphrase" in str(info.value) and str(path) in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_altered_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    EncryptedFileSecretStore(path, PASS, create=True).set("k", SECRET)
    doc = json.loads(path.read_text())
    doc["kdf"]["n"] = 2 ** 14  # the header is authenticated with the ciphertext
    path.write_text(json.dumps(doc))
    with pytest.raises(SecretStoreError, match="wrong passphrase .*or the file was altered"):
        EncryptedFileSecretStore(path, PASS)
    path.write_text("{not json")
    with pytest.raises(SecretStoreError, match="cannot read the encrypted secrets file \\(invalid JSON\\)"):
        EncryptedFileSecretStore(path, PASS)


def test_the_configuration_reads_an_encrypted_file_and_names_a_missing_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    EncryptedFileSecretStore(path, PASS, create=True).set("openai-key", SECRET)
    config = SecretsConfig(store="encrypted-file", path="secrets.enc", passphrase_env="MY_PASS")
    store = make_secret_store(config, tmp_path, environ={"MY_PASS": PASS})
    assert store.get("openai-key") == SECRET
    with pytest.raises(E.ConfigurationError, match="secrets.passphrase_env: .*MY_PASS, which is not set"):
        make_secret_store(config, tmp_path, environ={})
    with pytest.raises(E.ConfigurationError, match="secrets.path: .*wrong passphrase") as info:
        make_secret_store(config, tmp_path, environ={"MY_PASS": "wrong"})
    assert "wrong" not in str(info.value).replace("wrong passphrase", "")


def test_a_whole_mesh_resolves_keys_from_an_encrypted_file(tmp_path: Path, monkeypatch: Any) -> None:
    import modelmesh

    EncryptedFileSecretStore(tmp_path / "s.enc", PASS, create=True).set("openai-key", SECRET)
    monkeypatch.setenv("MODELMESH_SECRETS_PASSPHRASE", PASS)
    cfg = {"secrets": {"store": "encrypted-file", "path": str(tmp_path / "s.enc")},
           "providers": {"p": {"connector": "openai-compatible", "config": {
               "base_url": "http://127.0.0.1:9/v1", "auth": {"api_key": "${secrets:openai-key}"},
               "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}}}
    built = modelmesh.build(cfg)
    assert built.core.providers["p"].secret == SECRET and SECRET not in repr(built.config)


def test_importing_modelmesh_loads_neither_cryptography_nor_keyring() -> None:
    code = ("import sys, modelmesh, modelmesh.cdk; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'keyring')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the keyring ---------------------------------------------------------------------------------------

@pytest.fixture
def memory_keyring() -> Any:
    import keyring
    from keyring.backend import KeyringBackend
    from keyring.errors import PasswordDeleteError

    class MemoryKeyring(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.data: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.data.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.data[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            if self.data.pop((service, username), None) is None:
                raise PasswordDeleteError(username)

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_the_keyring_store_round_trips_through_the_configured_backend(memory_keyring: Any) -> None:
    store = make_secret_store(SecretsConfig(store="keyring", service="mesh-test"))
    assert isinstance(store, KeyringSecretStore) and store.get("openai-key") is None
    store.set("openai-key", SECRET)
    assert memory_keyring.data[("mesh-test", "openai-key")] == SECRET
    assert store.get("openai-key") == SECRET and store.get("OPENAI_KEY") is None
    assert store.list() == ("openai-key",)
    assert store.delete("openai-key") and not store.delete("openai-key") and store.list() == ()
    assert SECRET not in repr(store)


def test_a_failing_keyring_names_the_failure_not_the_value(memory_keyring: Any) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError(f"backend exploded holding {SECRET}")

    memory_keyring.set_password = broken
    with pytest.raises(SecretStoreError) as info:
        KeyringSecretStore("svc").set("k", SECRET)
    assert "RuntimeError" in str(info.value) and SECRET not in str(info.value)


# -- the command line ------------------------------------------------------------------------------------

def _cli(argv: list[str], stdin: str | None = None, capsys: Any = None, monkeypatch: Any = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("kind", ["dotenv", "json", "encrypted-file"])
def test_secrets_set_get_list_delete_round_trip(kind: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("MODELMESH_SECRETS_PASSPHRASE", PASS)
    path = tmp_path / {"dotenv": "keys.env", "json": "keys.json", "encrypted-file": "keys.enc"}[kind]
    where = ["--store", "encrypted-file" if kind == "encrypted-file" else "file", "--path", str(path)]
    code, out, err = _cli(["secrets", "set", "openai-key", *where], SECRET + "\n", capsys, monkeypatch)
    assert code == 0 and "openai-key: stored" in out and SECRET not in out + err
    assert _cli(["secrets", "set", "other", *where], OTHER, capsys, monkeypatch)[0] == 0
    code, out, _ = _cli(["secrets", "list", *where], None, capsys)
    assert out.split() == ["openai-key", "other"]
    code, out, _ = _cli(["secrets", "get", "openai-key", *where], None, capsys)
    assert code == 0 and "set (27 characters, fingerprint " in out and SECRET not in out
    code, out, _ = _cli(["secrets", "get", "openai-key", "--show", *where], None, capsys)
    assert out == SECRET + "\n"
    assert _cli(["secrets", "delete", "openai-key", *where], None, capsys)[0] == 0
    code, out, err = _cli(["secrets", "get", "openai-key", *where], None, capsys)
    assert code == 1 and "not set" in err
    assert (OTHER in path.read_text()) is (kind != "encrypted-file")  # only the encrypted file hides values


def test_secrets_through_a_configuration_file(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    (tmp_path / "modelmesh.yaml").write_text("secrets:\n  store: dotenv\n  path: keys.env\n")
    config = ["--config", str(tmp_path / "modelmesh.yaml")]
    assert _cli(["secrets", "set", "k", *config], SECRET, capsys, monkeypatch)[0] == 0
    assert (tmp_path / "keys.env").read_text() == f'k="{SECRET}"\n'
    assert _cli(["secrets", "list", *config], None, capsys)[1].split() == ["k"]


def test_secrets_refuses_clearly(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    code, _, err = _cli(["secrets", "set", "k", "--store", "env"], SECRET, capsys, monkeypatch)
    assert code == 2 and "read-only" in err and SECRET not in err
    code, _, err = _cli(["secrets", "list"], None, capsys)
    assert code == 2 and "either --config CONFIG or --store KIND" in err
    path = tmp_path / "k.enc"
    monkeypatch.setenv("MODELMESH_SECRETS_PASSPHRASE", PASS)
    _cli(["secrets", "set", "k", "--store", "encrypted-file", "--path", str(path)], SECRET, capsys, monkeypatch)
    monkeypatch.setenv("MODELMESH_SECRETS_PASSPHRASE", "wrong one")
    code, _, err = _cli(["secrets", "get", "k", "--show", "--store", "encrypted-file", "--path", str(path)], None, capsys)
    assert code == 2 and "wrong passphrase" in err and "Traceback" not in err and SECRET not in err
    code, _, err = _cli(["secrets", "set", "k", "--store", "file", "--path", str(tmp_path / "x.env")], "", capsys, monkeypatch)
    assert code == 2 and "no value given" in err


def test_the_value_is_never_taken_from_the_command_line(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["secrets", "set", "k", SECRET, "--store", "file", "--path", os.devnull])
    assert SECRET not in capsys.readouterr().out
