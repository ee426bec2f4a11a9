"""The capability tree: what a model can do, as dotted paths.

Theory of operation: capabilities form a three-level tree, root -> category -> leaf,
written as dotted paths (`generation.text-generation.chat-completion`). Models declare
leaves; pools and requests may name a leaf or any inner node, and then collect every
model whose leaves lie under it (a pool on `generation.audio-generation` takes every
audio model). The tree is plain data in `_TREE`; everything else is derived from it
once at import time.

Names are forgiving where it is safe: every leaf answers to its last segment
(`chat-completion`), a few friendly words map to leaves (`chat`, `tts`, `embeddings`),
case and `_`/`-` are ignored, and the seeds' short category spelling (`generation.audio`
for `generation.audio-generation`) is read too. Anything else is a ValueError that
suggests the nearest known name.
"""
from __future__ import annotations

import difflib
import types
from collections.abc import Mapping

__all__ = [
    "CAPABILITY_TREE",
    "ALL_LEAVES",
    "ALL_NODES",
    "ALIASES",
    "resolve_capability",
    "is_capability",
    "is_leaf",
    "is_under",
    "leaves_under",
    "infer_capabilities",
    "short_name",
    "serves",
]

# root -> category -> leaves. Leaf names are unique across the whole tree, so each one
# can stand for its full path.
_TREE: dict[str, dict[str, tuple[str, ...]]] = {
    "generation": {
        "text-generation": ("chat-completion", "text-completion", "code-generation",
                            "structured-output"),
        "image-generation": ("text-to-image", "image-editing", "image-variation"),
        "audio-generation": ("text-to-speech", "music-generation", "sound-effects"),
        "video-generation": ("text-to-video", "image-to-video"),
    },
    "understanding": {
        "text-understanding": ("classification", "sentiment-analysis", "entity-extraction",
                               "question-answering"),
        "image-understanding": ("image-to-text", "object-detection", "ocr"),
        "audio-understanding": ("speech-to-text", "audio-classification",
                                "speaker-diarization"),
        "video-understanding": ("video-to-text",),
        "document-understanding": ("document-parsing", "table-extraction"),
    },
    "transformation": {
        "text-transformation": ("translation", "summarization", "paraphrasing",
                                "grammar-correction"),
        "audio-transformation": ("speech-translation", "voice-conversion", "audio-enhancement"),
        "image-transformation": ("image-upscaling", "background-removal", "style-transfer"),
    },
    "representation": {
        "embeddings": ("text-embeddings", "image-embeddings", "multimodal-embeddings",
                       "code-embeddings"),
        "tokenization": ("token-counting",),
    },
    "retrieval": {
        "search": ("web-search", "semantic-search"),
        "reranking": ("rerank",),
    },
    "interaction": {
        "tool-use": ("function-calling", "code-execution", "computer-use"),
        "realtime": ("realtime-voice",),
        "agents": ("agentic-workflow",),
    },
    "evaluation": {
        "moderation": ("content-moderation", "pii-detection"),
        "scoring": ("llm-as-judge", "relevance-scoring"),
        "verification": ("fact-checking",),
    },
}

# Friendly words users reach for first; each names one leaf.
_FRIENDLY = {
    "chat": "chat-completion",
    "completion": "text-completion",
    "completions": "text-completion",
    "code": "code-generation",
    "json-mode": "structured-output",
    "embeddings": "text-embeddings",
    "embedding": "text-embeddings",
    "embed": "text-embeddings",
    "tts": "text-to-speech",
    "speech": "text-to-speech",
    "stt": "speech-to-text",
    "asr": "speech-to-text",
    "transcription": "speech-to-text",
    "transcriptions": "speech-to-text",
    "image-generation": "text-to-image",
    "images": "text-to-image",
    "vision": "image-to-text",
    "translate": "translation",
    "summarize": "summarization",
    "reranking": "rerank",
    "tools": "function-calling",
    "tool-calling": "function-calling",
    "moderation": "content-moderation",
    "search": "web-search",
}

CAPABILITY_TREE: Mapping[str, Mapping[str, tuple[str, ...]]] = types.MappingProxyType(
    {root: types.MappingProxyType(dict(cats)) for root, cats in _TREE.items()}
)
ALL_LEAVES: tuple[str, ...] = tuple(
    f"{root}.{cat}.{leaf}" for root, cats in _TREE.items() for cat, leaves in cats.items()
    for leaf in leaves
)
ALL_NODES: tuple[str, ...] = tuple(_TREE) + tuple(
    f"{root}.{cat}" for root, cats in _TREE.items() for cat in cats
)


def _build_aliases() -> dict[str, str]:
    by_short = {path.rsplit(".", 1)[1]: path for path in ALL_LEAVES}
    if len(by_short) != len(ALL_LEAVES):  # guards edits to _TREE
        raise AssertionError("capability leaf names must be unique")
    aliases = dict(by_short)
    for word, leaf in _FRIENDLY.items():
        aliases[word] = by_short[leaf]
    return aliases


ALIASES: Mapping[str, str] = types.MappingProxyType(_build_aliases())


def _seed_spellings() -> dict[str, str]:
    """`generation.audio` -> `generation.audio-generation`: the seeds write categories
    without their root's suffix; read that spelling wherever it is unambiguous."""
    spellings: dict[str, str] = {}
    for root, cats in _TREE.items():
        for cat in cats:
            head, _, tail = cat.rpartition("-")
            if head and tail == root:
                spellings[f"{root}.{head}"] = f"{root}.{cat}"
    return spellings


_SEED_SPELLINGS = _seed_spellings()
_KNOWN = frozenset(ALL_LEAVES) | frozenset(ALL_NODES)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _lookup(name: str) -> str | None:
    key = _normalise(name)
    if key in _KNOWN:
        return key
    if key in ALIASES:
        return ALIASES[key]
    for short, full in _SEED_SPELLINGS.items():
        if key == short or key.startswith(short + "."):
            candidate = full + key[len(short):]
            if candidate in _KNOWN:
                return candidate
    return None


def resolve_capability(name: str) -> str:
    """Full dotted path for a leaf alias, a full path, or an inner node path."""
    if not isinstance(name, str):
        raise TypeError(f"capability must be a string, got {type(name).__name__}")
    found = _lookup(name)
    if found is not None:
        return found
    choices = sorted(_KNOWN | set(ALIASES))
    close = difflib.get_close_matches(_normalise(name), choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown capability {name!r}{hint}")


def is_capability(name: object) -> bool:
    """True for anything `resolve_capability` accepts (leaf, inner node or alias)."""
    return isinstance(name, str) and _lookup(name) is not None


def is_leaf(name: str) -> bool:
    """True when `name` resolves to a leaf (something a model can declare)."""
    found = _lookup(name) if isinstance(name, str) else None
    return found is not None and found.count(".") == 2


def is_under(leaf_path: str, node_path: str) -> bool:
    """True when `leaf_path` is `node_path` or lies beneath it. Both may be aliases."""
    leaf = resolve_capability(leaf_path)
    node = resolve_capability(node_path)
    return leaf == node or leaf.startswith(node + ".")


def leaves_under(node_path: str) -> tuple[str, ...]:
    """Every leaf at or beneath `node_path`, in tree order."""
    node = resolve_capability(node_path)
    return tuple(leaf for leaf in ALL_LEAVES if leaf == node or leaf.startswith(node + "."))


def short_name(path: str) -> str:
    """The last segment of a capability path: `chat-completion` for the chat leaf."""
    return resolve_capability(path).rsplit(".", 1)[-1]


# Ordered: the first rule whose any-of words occur in the lower-cased id wins, so the
# specific words (embed, whisper, dall-e-2) come before the broad ones. Whisper transcribes and
# translates; DALL-E 2 and the GPT image models draw and edit (DALL-E 3 only draws).
_INFERENCE_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("rerank",), ("rerank",)),
    (("embed",), ("text-embeddings",)),
    (("whisper",), ("speech-to-text", "speech-translation")),
    (("transcribe", "speech-to-text", "scribe"), ("speech-to-text",)),
    (("tts", "text-to-speech", "eleven_", "eleven-"), ("text-to-speech",)),
    (("dall-e-2", "gpt-image"), ("text-to-image", "image-editing")),
    (("dall-e", "dalle", "imagen", "stable-diffusion", "sdxl", "flux"), ("text-to-image",)),
    (("moderation", "llama-guard"), ("content-moderation",)),
)


def infer_capabilities(model_id: str) -> tuple[str, ...]:
    """Best guess at a model's capabilities from its id; chat completion otherwise."""
    lowered = model_id.lower()
    for words, leaves in _INFERENCE_RULES:
        if any(word in lowered for word in words):
            return tuple(ALIASES[leaf] for leaf in leaves)
    return (ALIASES["chat-completion"],)


# each request operation, and the capability nodes whose models take it: a chat endpoint serves
# text generation and what is done by chatting (understanding, tool use, judging); embeddings serve
# embeddings; each audio and image operation its one leaf. An operation not listed here (models)
# is served by any model.
_OP_NODES: dict[str, tuple[str, ...]] = {
    "chat": ("generation.text-generation", "understanding.text-understanding", "understanding.image-understanding",
             "understanding.video-understanding", "understanding.document-understanding",
             "transformation.text-transformation", "interaction.tool-use", "interaction.agents",
             "evaluation.scoring", "evaluation.verification", "retrieval.search"),
    "embeddings": ("representation.embeddings",),
    "speech": ("generation.audio-generation.text-to-speech",),
    "transcriptions": ("understanding.audio-understanding.speech-to-text",),
    "translations": ("transformation.audio-transformation.speech-translation",),
    "images": ("generation.image-generation.text-to-image",),
    "image_edits": ("generation.image-generation.image-editing",),
}


def serves(capabilities: tuple[str, ...], op: str) -> bool:
    """Whether a model with these (resolved) capabilities takes requests of `op`; a model that
    declares none is taken at its word for anything."""
    nodes = _OP_NODES.get(op)
    if nodes is None or not capabilities:
        return True
    return any(c == n or c.startswith(n + ".") for c in capabilities for n in nodes)
