"""Files on both clients, over loopback against the fake's files API: a round trip, the
provider chosen by configuration, by `provider=` and by the id, each refusal said clearly,
provider errors raised as the SDK's classes, and the batch path sharing the files codec."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmesh import errors as E
from modelmesh._core.codecs.files import tag, untag
from modelmesh.testing import Error, FakeClock, FakeUpstream

from shells import SHELLS, make_client

KEY_A, KEY_B, KEY_C = "sk-files-alpha-0123456789", "sk-files-beta-0123456789", "sk-ant-files-gamma-0123456789"
TRAINING = b"".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                             {"role": "assistant", "content": f"a{i}"}]}).encode() + b"\n"
                    for i in range(3))


def provider(up, key, *, files=None, fine_tuning=None, connector="openai", models=("gpt-x",)):
    infra = {k: v for k, v in (("files", files), ("fine_tuning", fine_tuning)) if v is not None}
    cfg = {"base_url": up.url, "auth": {"api_key": key}, "timeout": "5s",
           "models": [{"id": m, "capabilities": ["chat-completion"]} for m in models]}
    if infra:
        cfg["infrastructure"] = infra
    return {"connector": connector, "config": cfg}


@pytest.fixture
def ups():
    clock = FakeClock()
    with FakeUpstream("openai", name="alpha", api_key=KEY_A, models=["gpt-x"], clock=clock) as a, \
            FakeUpstream("openai", name="beta", api_key=KEY_B, models=["gpt-x"], clock=clock) as b, \
            FakeUpstream("anthropic", name="gamma", api_key=KEY_C, models=["claude-x"], clock=clock) as c:
        yield a, b, c


def mesh(shell, providers):
    return make_client(shell, {"providers": providers}, environ={})


@pytest.mark.parametrize("shell", SHELLS)
def test_a_file_round_trip_at_the_one_provider_that_offers_files(shell, ups, tmp_path):
    a, b, _ = ups
    path = tmp_path / "train.jsonl"
    path.write_bytes(TRAINING)
    with mesh(shell, {"a": provider(a, KEY_A, files=True), "b": provider(b, KEY_B)}) as client:
        f = client.files.create(file=path, purpose="fine-tune")
        assert f.id.endswith("~a") and untag(f.id)[0] in {x.id for x in a.files}
        assert (f.object, f.filename, f.bytes, f.purpose) == ("file", "train.jsonl", len(TRAINING), "fine-tune")
        other = client.files.create(file=("b.jsonl", b'{"custom_id": "x"}\n'), purpose="batch")
        assert {x.id for x in client.files.list()} == {f.id, other.id}
        assert [x.id for x in client.files.list(purpose="batch")] == [other.id]
        assert client.files.retrieve(f.id).model_dump()["filename"] == "train.jsonl"
        content = client.files.content(f.id)
        assert content.read() == content.content == TRAINING and content.text == TRAINING.decode()
        gone = client.files.delete(f.id)
        assert (gone.id, gone.deleted) == (f.id, True)
        with pytest.raises(E.NotFoundError, match="No such File object") as missing:
            client.files.retrieve(f.id)
        assert missing.value.status_code == 404 and missing.value.provider == "a"
    assert b.requests == []  # b does not offer files
    assert all(r.headers["authorization"] == f"Bearer {KEY_A}" for r in a.requests)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_provider_is_named_or_found_in_the_id(shell, ups):
    a, b, _ = ups
    with mesh(shell, {"a": provider(a, KEY_A, files=True), "b": provider(b, KEY_B, files=True)}) as client:
        with pytest.raises(E.BadRequestError, match=r"several providers offer files \(a, b\); say which with "
                                                    "provider="):
            client.files.list()
        f = client.files.create(file=("x.jsonl", TRAINING), purpose="fine-tune", provider="b")
        assert f.id.endswith("~b") and len(b.files) == 1 and a.files == []
        assert client.files.retrieve(f.id).filename == "x.jsonl"  # the id says b
        # a vendor's own id, untagged: the caller names the provider
        assert client.files.retrieve(untag(f.id)[0], provider="b").id == f.id
        with pytest.raises(E.InvalidArgumentError, match="provider 'b''s, not 'a''s"):
            client.files.retrieve(f.id, provider="a")
        with pytest.raises(E.NotFoundError, match=r"no provider 'zed' in this mesh \(its providers: a, b\)"):
            client.files.list(provider="zed")


@pytest.mark.parametrize("shell", SHELLS)
def test_unsupported_calls_are_refused_naming_provider_and_interface(shell, ups):
    a, b, c = ups
    providers = {"a": provider(a, KEY_A), "c": provider(c, KEY_C, connector="anthropic", models=("claude-x",))}
    with mesh(shell, providers) as client:
        with pytest.raises(E.BadRequestError, match=r"files.list: no provider of this mesh offers files: none says "
                                                    r"infrastructure.files: true .*\(providers: a, c\)"):
            client.files.list()
        with pytest.raises(E.BadRequestError, match="provider 'c' does not offer files: the 'anthropic' connector "
                                                    r"does not offer it \(it offers: batch, discovery\)") as info:
            client.files.create(file=("x.jsonl", TRAINING), purpose="fine-tune", provider="c")
        assert info.value.status_code == 400
        with pytest.raises(E.BadRequestError, match="provider 'a' does not offer files: its configuration does "
                                                    "not say infrastructure.files: true"):
            client.files.retrieve("file-abc~a")
        with pytest.raises(E.BadRequestError, match="does not offer fine-tuning"):
            client.fine_tuning.jobs.list(provider="c")
        with pytest.raises(E.InvalidArgumentError, match="'purpose' is required"):
            client.files.create(file=("x.jsonl", TRAINING), purpose="", provider="a")
    assert a.requests == [] and c.requests == []


def test_infrastructure_files_true_is_still_refused_for_a_connector_without_files(ups):
    import modelmesh

    _, _, c = ups
    with pytest.raises(modelmesh.ConfigurationError, match="does not offer files"):
        modelmesh.MeshClient({"providers": {"c": provider(c, KEY_C, files=True, connector="anthropic",
                                                          models=("claude-x",))}}, environ={})


@pytest.mark.parametrize("shell", SHELLS)
def test_provider_errors_are_the_sdk_classes_with_the_vendors_words_and_no_key(shell, ups):
    a, _, _ = ups
    with mesh(shell, {"a": provider(a, KEY_A, files=True)}) as client:
        a.script(Error(429, code="rate_limit_exceeded"))
        with pytest.raises(E.RateLimitError) as limited:
            client.files.list()
        with pytest.raises(E.BadRequestError, match="Invalid value for 'purpose'") as bad:
            client.files.create(file=("x.txt", b"hi"), purpose="nonsense")
        a.script(Error(503))
        with pytest.raises(E.InternalServerError, match=r"provider 'a' files API \(GET /v1/files\)"):
            client.files.list()
    for err in (limited.value, bad.value):
        assert KEY_A not in str(err) and KEY_A not in repr(err)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_provider_that_cannot_be_reached_is_a_connection_error(shell):
    from modelmesh.testing import refuse_connections

    cfg = {"connector": "openai", "config": {"base_url": refuse_connections() + "/v1", "auth": {"api_key": KEY_A},
                                             "models": ["gpt-x"], "infrastructure": {"files": True}}}
    with mesh(shell, {"a": cfg}) as client, pytest.raises(E.APIConnectionError, match="provider 'a' files API"):
        client.files.list()


@given(ident=st.from_regex(r"[A-Za-z0-9_.:~-]{1,60}", fullmatch=True),
       provider_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True))
def test_any_id_of_any_provider_comes_back_whole(ident, provider_id):
    assert untag(tag(ident, provider_id)) == (ident, provider_id)
    assert "/" not in tag(ident, provider_id) and "?" not in tag(ident, provider_id)


def test_ids_carry_their_provider_reversibly():
    for ident, provider_id in (("file-abc", "openai"), ("file-x~y", "p.q-r_s"), ("ftjob-1", "a")):
        assert untag(tag(ident, provider_id)) == (ident, provider_id)
    assert untag("file-abc") == ("file-abc", None)
    assert untag("~a") == ("~a", None)
