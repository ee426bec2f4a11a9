"""Provider presets: the real base URLs and key variables of the providers we know.

A preset turns `connector: groq` plus an API key into a complete provider: it fills in the
base URL and where the key comes from (the wire format each connector speaks is the codec
registry's: `codec_for_connector`). `detect(environ)` is what
`modelmesh.create()` uses to find providers from environment variables.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._core.codecs import codec_for_connector

__all__ = ["Preset", "PRESETS", "detect", "host_url"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    name: str
    base_url: str
    key_env: str | None          # environment variable holding the key; None = no key (local)
    default_models: tuple[str, ...] = ()
    host_env: str | None = None  # environment variable overriding the base URL
    host_required: bool = False  # without the host variable there is no provider (Azure: no endpoint)
    local: bool = False
    docs: str = ""
    alt_key_envs: tuple[str, ...] = ()  # other spellings of the key variable, read in order
    models_env: str | None = None       # variable listing the models (Azure deployments), comma-separated

    @property
    def codec(self) -> str:
        """The wire format this connector speaks (the codec registry says)."""
        return codec_for_connector(self.name)

    def key_in(self, environ: Mapping[str, str]) -> str | None:
        for name in (self.key_env, *self.alt_key_envs):
            if name and environ.get(name):
                return environ[name]
        return None

    def base_url_in(self, environ: Mapping[str, str]) -> str:
        """The base URL: the host variable's when it is set (OLLAMA_HOST, AZURE_OPENAI_ENDPOINT), else the preset's."""
        host = environ.get(self.host_env) if self.host_env else None
        return host_url(self, host) if host else self.base_url

    @property
    def key_names(self) -> str:
        return " or ".join(n for n in (self.key_env, *self.alt_key_envs) if n)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(name="openai", base_url="https://api.openai.com/v1", key_env="OPENAI_API_KEY", host_env="OPENAI_BASE_URL",
           default_models=("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")),
    Preset(name="anthropic", base_url="https://api.anthropic.com/v1", key_env="ANTHROPIC_API_KEY",
           default_models=("claude-3-5-haiku-latest", "claude-sonnet-4-5")),
    Preset(name="gemini", base_url="https://generativelanguage.googleapis.com/v1beta", key_env="GOOGLE_API_KEY",
           alt_key_envs=("GEMINI_API_KEY",),
           default_models=("gemini-2.0-flash", "gemini-2.5-flash", "text-embedding-004")),
    Preset(name="azure-openai", base_url="", key_env="AZURE_OPENAI_API_KEY",
           host_env="AZURE_OPENAI_ENDPOINT", host_required=True, models_env="AZURE_OPENAI_DEPLOYMENTS"),
    Preset(name="groq", base_url="https://api.groq.com/openai/v1", key_env="GROQ_API_KEY",
           default_models=("llama-3.1-8b-instant", "llama-3.3-70b-versatile")),
    Preset(name="mistral", base_url="https://api.mistral.ai/v1", key_env="MISTRAL_API_KEY",
           default_models=("mistral-small-latest", "mistral-embed")),
    Preset(name="deepseek", base_url="https://api.deepseek.com/v1", key_env="DEEPSEEK_API_KEY",
           default_models=("deepseek-chat",)),
    Preset(name="together", base_url="https://api.together.xyz/v1", key_env="TOGETHER_API_KEY",
           default_models=("meta-llama/Llama-3.3-70B-Instruct-Turbo",)),
    Preset(name="openrouter", base_url="https://openrouter.ai/api/v1", key_env="OPENROUTER_API_KEY",
           default_models=("openai/gpt-4o-mini",)),
    Preset(name="xai", base_url="https://api.x.ai/v1", key_env="XAI_API_KEY", default_models=("grok-3-mini",)),
    Preset(name="perplexity", base_url="https://api.perplexity.ai", key_env="PERPLEXITY_API_KEY",
           default_models=("sonar",)),
    Preset(name="fireworks", base_url="https://api.fireworks.ai/inference/v1", key_env="FIREWORKS_API_KEY",
           default_models=("accounts/fireworks/models/llama-v3p1-8b-instruct",)),
    Preset(name="cerebras", base_url="https://api.cerebras.ai/v1", key_env="CEREBRAS_API_KEY",
           default_models=("llama3.1-8b",)),
    Preset(name="cohere", base_url="https://api.cohere.com", key_env="COHERE_API_KEY", alt_key_envs=("CO_API_KEY",),
           default_models=("command-r-08-2024", "embed-english-v3.0")),
    Preset(name="ollama", base_url="http://localhost:11434/v1", key_env=None, host_env="OLLAMA_HOST", local=True),
    Preset(name="lmstudio", base_url="http://localhost:1234/v1", key_env=None, host_env="LMSTUDIO_HOST", local=True),
    Preset(name="vllm", base_url="http://localhost:8000/v1", key_env=None, host_env="VLLM_HOST", local=True),
    Preset(name="localai", base_url="http://localhost:8080/v1", key_env=None, host_env="LOCALAI_HOST", local=True),
    Preset(name="openai-compatible", base_url="", key_env=None),
    # speech vendors
    Preset(name="elevenlabs", base_url="https://api.elevenlabs.io/v1", key_env="ELEVENLABS_API_KEY",
           alt_key_envs=("XI_API_KEY",), default_models=("eleven_multilingual_v2", "eleven_flash_v2_5")),
    Preset(name="deepgram", base_url="https://api.deepgram.com/v1", key_env="DEEPGRAM_API_KEY",
           default_models=("nova-3",)),
)}


def host_url(preset: Preset, value: str) -> str:
    """OLLAMA_HOST may be "127.0.0.1:11434" or a full URL; the preset's path (/v1) is kept."""
    url = value if "://" in value else f"http://{value}"
    url = url.rstrip("/")
    if preset.local and not url.endswith("/v1"):
        url += "/v1"
    return url


def detect(environ: Mapping[str, str]) -> list[tuple[Preset, str | None, str]]:
    """Providers the environment offers: (preset, key or None, base_url), in preset order.
    Cloud providers need their key variable; local servers need their host variable."""
    found: list[tuple[Preset, str | None, str]] = []
    for preset in PRESETS.values():
        if preset.name in ("openai-compatible",):
            continue
        if preset.key_env is not None:
            key = preset.key_in(environ)
            if not key:
                continue
            if preset.host_required and not environ.get(preset.host_env or ""):
                continue  # Azure: a key without its endpoint is no provider
            found.append((preset, key, preset.base_url_in(environ)))
        elif preset.host_env and environ.get(preset.host_env):
            found.append((preset, None, preset.base_url_in(environ)))
    return found
