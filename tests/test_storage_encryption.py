"""`storage.persistence.encryption`: records at rest are ciphertext in every connector, under a
key from the configured secret store; a missing, short or wrong key is a configuration error
naming the setting (never the key); and encrypted health is still shared between processes."""
from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import pytest
from test_shared_health import MSG, mesh_config, workers

import modelmesh
from modelmesh.connectors.storage import Cipher, Serializer
from modelmesh.testing import Error, FakeUpstream

KEY = "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyz"   # 40 characters
OTHER = "0th3r-" + "0123456789abcdefghijklmnopqrstuvwxyz"
NEEDLES = (b'"reason"', b"auth_failure", b'"down"')      # what a stored standby says in the clear


def cipher(secret=KEY):
    return Cipher(secret, secret_name="storage_encryption_key")


# -- the Serializer with a Cipher --------------------------------------------------------------

@pytest.mark.parametrize("format", ["json", "yaml", "msgpack"])
@pytest.mark.parametrize("compression", [False, True])
def test_records_come_back_equal_and_hold_nothing_of_the_plaintext(format, compression):
    record = {"down": True, "at": 1.5, "until": None, "reason": "auth_failure"}
    sealed = Serializer(format, compression, cipher())
    raw = sealed.dumps(record, "health/provider:x")
    assert sealed.loads(raw, "health/provider:x") == record
    assert not any(n.strip(b'"') in raw for n in NEEDLES)
    assert raw != sealed.dumps(record, "health/provider:x")  # a fresh IV each time: equal records look different


def test_a_record_opens_only_under_its_own_key_and_only_with_the_same_secret():
    sealed = Serializer(cipher=cipher())
    raw = sealed.dumps({"a": 1}, "health/provider:x")
    with pytest.raises(ValueError, match="was encrypted for the record 'health/provider:x'"):
        sealed.loads(raw, "health/provider:y")  # copied to another record: not believed there
    with pytest.raises(ValueError) as info:
        Serializer(cipher=cipher(OTHER)).loads(raw, "health/provider:x")
    message = str(info.value)
    assert "storage.persistence.encryption" in message and "'storage_encryption_key'" in message
    assert KEY not in message and OTHER not in message
    with pytest.raises(ValueError, match="storage.persistence.encryption"):
        sealed.loads(b'{"a":1}', "health/provider:x")  # written without encryption
    with pytest.raises(ValueError, match="storage.persistence.encryption"):
        sealed.loads(raw[:-1] + bytes([raw[-1] ^ 1]), "health/provider:x")  # altered


def test_the_secret_appears_in_no_repr_and_a_short_one_is_refused_without_showing_it():
    assert KEY not in repr(cipher()) and KEY not in repr(Serializer(cipher=cipher()))
    assert "encrypted=True" in repr(Serializer(cipher=cipher()))
    with pytest.raises(ValueError) as info:
        cipher("short-but-secret")
    assert "16 characters long" in str(info.value) and "short-but-secret" not in str(info.value)


# -- configuration ---------------------------------------------------------------------------

@pytest.fixture(params=["file", "sqlite", "redis"])
def storage(request, tmp_path):
    if request.param == "file":
        return {"connector": "file", "config": {"path": str(tmp_path / "store")}}
    if request.param == "sqlite":
        return {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")}}
    return {"connector": "redis", "config": {"url": request.getfixturevalue("redis_url"),
                                             "prefix": f"enc-{uuid.uuid4().hex}:"}}


def encrypted(config, key=KEY, name="storage_encryption_key"):
    config = json.loads(json.dumps(config))
    config["storage"].setdefault("persistence", {})["encryption"] = True
    if name != "storage_encryption_key":
        config["storage"]["persistence"]["encryption_secret"] = name
    config["secrets"] = {"store": "memory", "values": {name: key} if key else {}}
    return config


def raw_bytes(storage) -> bytes:
    """Everything the store holds, as the backend holds it (files, database pages, Redis values)."""
    if storage["connector"] == "redis":
        import redis

        client = redis.Redis.from_url(storage["config"]["url"])
        prefix = storage["config"]["prefix"]
        out = b""
        for key in client.scan_iter(match=f"{prefix}*"):
            out += key
            if client.type(key) == b"hash":
                out += b"".join(k + v for k, v in client.hgetall(key).items())
            else:
                out += client.get(key) or b""
        client.close()
        return out
    root = Path(storage["config"]["path"])
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else list(root.parent.glob(root.name + "*"))
    return b"".join(p.read_bytes() for p in files)


@pytest.mark.parametrize("encrypt", [False, True])
def test_every_connector_stores_ciphertext_that_another_client_with_the_key_reads(storage, encrypt):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        x.always(Error(401, code="invalid_api_key"))
        config = mesh_config(x, y, storage)
        config = encrypted(config) if encrypt else config
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as one:
            assert one.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            assert one.sync()
        held = raw_bytes(storage)
        assert b"health/provider:x" in held  # key names stay in the clear: the record is there
        assert all((needle in held) is not encrypt for needle in NEEDLES)
        assert KEY.encode() not in held
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as two:
            assert two.status()["providers"]["x"]["up"] is True
            assert two.sync() and two.status()["providers"]["x"]["up"] is False
            assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
        assert len(x.requests) == 1


def test_a_missing_key_names_the_setting_and_where_to_put_the_key(tmp_path):
    config = encrypted(mesh_config(_Up(), _Up(), {"connector": "sqlite", "config": {"path": str(tmp_path / "m.db")}}),
                       key=None, name="mesh-key")
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(config, environ={})
    (problem,) = info.value.problems
    assert problem.startswith("storage.persistence.encryption: the secret 'mesh-key' (named by "
                              "storage.persistence.encryption_secret) not found in the secret store")
    assert "MESH_KEY" in problem
    assert not (tmp_path / "m.db").exists()  # nothing opened for a configuration that cannot work


def test_a_short_key_is_refused_without_being_shown(tmp_path):
    config = encrypted(mesh_config(_Up(), _Up(), {"connector": "sqlite", "config": {"path": str(tmp_path / "m.db")}}),
                       key="tiny-secret-value")
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(config, environ={})
    (problem,) = info.value.problems
    assert problem.startswith("storage.persistence.encryption: the secret 'storage_encryption_key' is 17 characters")
    assert "tiny-secret-value" not in str(info.value)


def test_a_wrong_key_is_a_configuration_error_at_start_naming_the_setting(storage):
    config = mesh_config(_Up(), _Up(), storage)
    modelmesh.build(encrypted(config))  # the first process writes the store's key check
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(encrypted(config, key=OTHER))
    (problem,) = info.value.problems
    assert problem.startswith("storage.persistence.encryption: the key in the secret 'storage_encryption_key' "
                              "is not the one this store's records are encrypted with")
    assert KEY not in str(info.value) and OTHER not in str(info.value)
    modelmesh.build(encrypted(config))  # the right key still opens it


def test_encryption_without_a_store_to_encrypt_is_refused():
    config = encrypted(mesh_config(_Up(), _Up(), {"connector": "memory"}))
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(config)
    assert [p.partition(":")[0] for p in info.value.problems] == ["storage.persistence.encryption"]
    assert "memory storage shares nothing" in info.value.problems[0]


def test_a_record_under_another_key_is_skipped_with_a_warning_never_trusted(tmp_path, caplog):
    from modelmesh.connectors.storage import SQLiteStorage

    storage = {"connector": "sqlite", "config": {"path": str(tmp_path / "m.db")}}
    foreign = Serializer(cipher=cipher(OTHER)).dumps({"down": True, "at": 1.0, "until": None, "reason": "x"},
                                                     "health/provider:x")
    with SQLiteStorage(str(tmp_path / "m.db")) as store:
        store.save("health/provider:x", foreign)  # the key check is absent: a store filled by hand
    with modelmesh.MeshClient(encrypted(mesh_config(_Up(), _Up(), storage)), environ={}) as client, \
            caplog.at_level(logging.WARNING, logger="modelmesh"):
        assert client.sync()
        assert client.status()["providers"]["x"]["up"] is True
    assert "does not decrypt with the key in the secret 'storage_encryption_key'" in caplog.text
    assert KEY not in caplog.text and OTHER not in caplog.text


def test_encrypted_health_is_shared_between_worker_processes(tmp_path):
    storage = {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")}}
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        x.always(Error(401, code="invalid_api_key"))
        config = encrypted(mesh_config(x, y, storage))
        assert workers(config, 1, 1) == [["y"]]
        assert workers(config, 2, 3) == [["y"] * 3] * 2
        assert len(x.requests) == 1
    assert not any(needle in raw_bytes(storage) for needle in NEEDLES)
    assert os.path.getsize(tmp_path / "mesh.db") > 0


class _Up:
    """A provider address for configurations that send nothing."""

    url = "http://127.0.0.1:9/v1"
