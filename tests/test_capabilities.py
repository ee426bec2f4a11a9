"""The capability tree: paths, aliases, categories and inference from model ids."""
from __future__ import annotations

import pytest

from modelmesh._core._capabilities import (
    ALIASES,
    ALL_LEAVES,
    ALL_NODES,
    CAPABILITY_TREE,
    infer_capabilities,
    is_capability,
    is_leaf,
    is_under,
    leaves_under,
    resolve_capability,
    short_name,
)

CHAT = "generation.text-generation.chat-completion"


def test_seven_roots() -> None:
    assert tuple(CAPABILITY_TREE) == ("generation", "understanding", "transformation",
                                      "representation", "retrieval", "interaction",
                                      "evaluation")


@pytest.mark.parametrize(
    "path",
    [
        CHAT,
        "generation.text-generation.text-completion",
        "generation.text-generation.code-generation",
        "generation.image-generation.text-to-image",
        "generation.audio-generation.text-to-speech",
        "understanding.audio-understanding.speech-to-text",
        "understanding.image-understanding.image-to-text",
        "representation.embeddings.text-embeddings",
        "representation.embeddings.image-embeddings",
        "transformation.text-transformation.translation",
        "transformation.text-transformation.summarization",
        "retrieval.search.web-search",
        "retrieval.reranking.rerank",
        "interaction.tool-use.function-calling",
        "evaluation.moderation.content-moderation",
    ],
)
def test_required_leaves_exist(path: str) -> None:
    assert path in ALL_LEAVES
    assert resolve_capability(path) == path


def test_every_leaf_answers_to_its_last_segment() -> None:
    for path in ALL_LEAVES:
        assert resolve_capability(path.rsplit(".", 1)[1]) == path
        assert short_name(path) == path.rsplit(".", 1)[1]


@pytest.mark.parametrize(
    ("alias", "path"),
    [
        ("chat", CHAT),
        ("chat-completion", CHAT),
        ("embeddings", "representation.embeddings.text-embeddings"),
        ("tts", "generation.audio-generation.text-to-speech"),
        ("stt", "understanding.audio-understanding.speech-to-text"),
        ("transcription", "understanding.audio-understanding.speech-to-text"),
        ("image-generation", "generation.image-generation.text-to-image"),
        ("vision", "understanding.image-understanding.image-to-text"),
        ("Chat_Completion", CHAT),
    ],
)
def test_aliases(alias: str, path: str) -> None:
    assert resolve_capability(alias) == path
    assert is_capability(alias)


def test_aliases_mapping_is_read_only_and_points_at_leaves() -> None:
    assert ALIASES["chat"] == CHAT
    assert set(ALIASES.values()) <= set(ALL_LEAVES)
    with pytest.raises(TypeError):
        ALIASES["chat"] = "x"  # type: ignore[index]


def test_inner_nodes_resolve_to_themselves() -> None:
    assert resolve_capability("generation") == "generation"
    assert resolve_capability("generation.text-generation") == "generation.text-generation"
    assert all(resolve_capability(node) == node for node in ALL_NODES)
    assert not is_leaf("generation") and is_leaf("chat")


def test_seed_spelling_of_categories() -> None:
    # seed 002 writes generation.audio.text-to-speech and understanding.audio.speech-to-text
    assert resolve_capability("generation.audio.text-to-speech") == \
        "generation.audio-generation.text-to-speech"
    assert resolve_capability("understanding.audio") == "understanding.audio-understanding"


def test_unknown_capability_suggests_the_nearest() -> None:
    with pytest.raises(ValueError, match=r"unknown capability 'chat-complet' "
                                         r"\(did you mean 'chat-completion'\?\)"):
        resolve_capability("chat-complet")
    with pytest.raises(ValueError, match="unknown capability 'zzzz'$"):
        resolve_capability("zzzz")
    assert not is_capability("zzzz")
    assert not is_capability(42)


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        resolve_capability(None)  # type: ignore[arg-type]


def test_is_under() -> None:
    assert is_under(CHAT, "generation")
    assert is_under("chat", "generation.text-generation")
    assert is_under(CHAT, CHAT)
    assert not is_under(CHAT, "understanding")
    assert not is_under("text-embeddings", "generation")
    assert not is_under("text-to-image", "generation.text-generation")
    assert is_under("generation.audio.text-to-speech", "generation.audio")
    with pytest.raises(ValueError):
        is_under("chat", "no-such-node")


def test_leaves_under() -> None:
    audio = leaves_under("generation.audio")
    assert "generation.audio-generation.text-to-speech" in audio
    assert all(leaf.startswith("generation.audio-generation.") for leaf in audio)
    assert leaves_under("chat") == (CHAT,)
    assert set(leaves_under("generation")) == {leaf for leaf in ALL_LEAVES
                                               if leaf.startswith("generation.")}


@pytest.mark.parametrize(
    ("model_id", "short"),
    [
        ("text-embedding-3-small", "text-embeddings"),
        ("nomic-embed-text", "text-embeddings"),
        ("whisper-1", "speech-to-text"),
        ("gpt-4o-transcribe", "speech-to-text"),
        ("tts-1-hd", "text-to-speech"),
        ("gpt-4o-mini-tts", "text-to-speech"),
        ("dall-e-3", "text-to-image"),
        ("gpt-image-1", "text-to-image"),
        ("imagen-3.0-generate-002", "text-to-image"),
        ("stabilityai/stable-diffusion-xl", "text-to-image"),
        ("rerank-english-v3.0", "rerank"),
        ("omni-moderation-latest", "content-moderation"),
        ("gpt-4o", "chat-completion"),
        ("meta-llama/llama-3.1-8b-instruct", "chat-completion"),
        ("claude-3-5-sonnet-20241022", "chat-completion"),
    ],
)
def test_infer_capabilities(model_id: str, short: str) -> None:
    assert infer_capabilities(model_id)[0] == ALIASES[short]


@pytest.mark.parametrize(
    ("model_id", "shorts"),
    [
        ("whisper-1", ("speech-to-text", "speech-translation")),  # /audio/translations takes Whisper
        ("whisper-large-v3", ("speech-to-text", "speech-translation")),
        ("gpt-4o-transcribe", ("speech-to-text",)),                # transcription only
        ("dall-e-2", ("text-to-image", "image-editing")),
        ("gpt-image-1", ("text-to-image", "image-editing")),
        ("dall-e-3", ("text-to-image",)),                          # no edits endpoint for DALL-E 3
        ("eleven_multilingual_v2", ("text-to-speech",)),
        ("gpt-4o", ("chat-completion",)),
    ],
)
def test_infer_capabilities_every_leaf(model_id: str, shorts: tuple[str, ...]) -> None:
    assert infer_capabilities(model_id) == tuple(ALIASES[s] for s in shorts)
