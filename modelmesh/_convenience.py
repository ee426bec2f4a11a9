"""The convenience layer: `modelmesh.create()` and `QuickProvider`.

`create("chat-completion")` builds a configuration from what it is given or finds: each
provider named in `providers=` (preset names, `QuickProvider`s or provider dicts), each
key in `api_keys=`, and otherwise every provider whose key variable is set in the
environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY, GROQ_API_KEY, ...; local
servers by OLLAMA_HOST, LMSTUDIO_HOST, VLLM_HOST, LOCALAI_HOST). One pool per requested
capability, named by it, with the chosen strategy. The result is an ordinary MeshClient.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ._core._capabilities import infer_capabilities, resolve_capability
from ._core._config_schema import CONNECTOR_CAPABILITIES
from ._core._errors import ConfigurationError, redact
from .connectors.presets import PRESETS, Preset, detect

__all__ = ["create", "QuickProvider", "discover_models"]


def discover_models(base_url: str, api_key: str | None = None, *, timeout: float = 5.0, session: Any = None) -> list[str]:
    """Model ids an OpenAI-compatible server lists at GET {base_url}/models."""
    import requests

    http = session or requests
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = base_url.rstrip("/") + "/models"
    try:
        r = http.get(url, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise ConfigurationError([f"{url}: could not list models ({type(exc).__name__})"]) from None
    if r.status_code != 200:
        raise ConfigurationError([f"{url}: listing models answered {r.status_code}: {redact(r.text[:200], [api_key or ''])}"])
    try:
        return [m["id"] for m in r.json().get("data", []) if isinstance(m, dict) and "id" in m]
    except (ValueError, AttributeError):
        raise ConfigurationError([f"{url}: the model list is not OpenAI-shaped JSON"]) from None


@dataclass
class QuickProvider:
    """A minimal OpenAI-compatible provider: a base URL, a key and (optionally) models.
    With no models, they are discovered from GET {base_url}/models when the client is made."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    models: list[str] = field(default_factory=list)
    name: str = "quick"
    capabilities: list[str] | None = None
    connector: str = "openai-compatible"

    def to_config(self) -> dict[str, Any]:
        models = list(self.models) or discover_models(self.base_url, self.api_key)
        if not models:
            raise ConfigurationError([f"providers.{self.name}: {self.base_url} lists no models; pass models=[...]"])
        entries = []
        for mid in models:
            entry: dict[str, Any] = {"id": mid}
            if self.capabilities:
                entry["capabilities"] = list(self.capabilities)
            entries.append(entry)
        auth = {"method": "api_key", "api_key": self.api_key} if self.api_key else {"method": "none"}
        return {"connector": self.connector, "config": {"base_url": self.base_url, "auth": auth, "models": entries}}


def _preset_config(preset: Preset, key: str | None, base_url: str, environ: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {"base_url": base_url}
    if preset.models_env:  # Azure serves deployments, which no endpoint lists for an API key
        listed = [m.strip() for m in environ.get(preset.models_env, "").split(",") if m.strip()]
        if not listed:
            raise ConfigurationError([f"{preset.name}: {preset.key_names} is set; also set {preset.models_env} "
                                      "to your deployment names, comma-separated"])
        models = listed
        if environ.get("AZURE_OPENAI_API_VERSION"):
            config["api_version"] = environ["AZURE_OPENAI_API_VERSION"]
    else:
        models = list(preset.default_models) or discover_models(base_url, key)
    config["auth"] = {"method": "api_key", "api_key": key} if key else {"method": "none"}
    config["models"] = models
    return {"connector": preset.name, "config": config}


def _providers_from(providers: Iterable[Any] | None, api_keys: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, Any]:
    if providers is None:
        specs: dict[str, tuple[Preset, str | None, str]] = {}
        for preset, key, base in detect(environ):
            specs[preset.name] = (preset, api_keys.get(preset.name, key), base)
        for name, key in api_keys.items():
            if name not in specs:
                if name not in PRESETS:
                    raise ConfigurationError([f"api_keys.{name}: unknown provider (known: {', '.join(PRESETS)})"])
                # the host variable counts here too (AZURE_OPENAI_ENDPOINT), as for providers=[name]
                specs[name] = (PRESETS[name], key, PRESETS[name].base_url_in(environ))
        return {name: _preset_config(preset, key, base, environ) for name, (preset, key, base) in specs.items()}
    out: dict[str, Any] = {}
    for i, item in enumerate(providers):
        if isinstance(item, QuickProvider):
            out[item.name] = item.to_config()
        elif isinstance(item, str):
            if item not in PRESETS:
                raise ConfigurationError([f"providers[{i}]: unknown provider '{item}' (known: {', '.join(PRESETS)})"])
            preset = PRESETS[item]
            key = api_keys.get(item) or preset.key_in(environ)
            if preset.key_env and not key:
                raise ConfigurationError([f"providers[{i}]: '{item}' needs an API key: set {preset.key_names} or pass api_keys={{'{item}': ...}}"])
            out[item] = _preset_config(preset, key, preset.base_url_in(environ), environ)
        elif isinstance(item, Mapping) and "id" in item:
            spec = dict(item)
            out[spec.pop("id")] = spec
        else:
            raise ConfigurationError([f"providers[{i}]: expected a provider name, a QuickProvider or a dict with 'id', got {type(item).__name__}"])
    return out


def create(
    *capabilities: str,
    providers: Iterable[Any] | None = None,
    strategy: str | None = None,
    api_keys: Mapping[str, str] | None = None,
    config: Any = None,
    environ: Mapping[str, str] | None = None,
    **client_kwargs: Any,
):
    """An OpenAI-compatible MeshClient for `capabilities` (default: chat-completion)."""
    from .client import MeshClient

    env = os.environ if environ is None else environ
    if config is not None:
        if providers is not None or api_keys:
            raise ConfigurationError(["create(): pass either config= or providers=/api_keys=, not both"])
        return MeshClient(config, environ=env, **client_kwargs)
    found = _providers_from(providers, dict(api_keys or {}), env)
    if not found:
        names = ", ".join(p.key_env for p in PRESETS.values() if p.key_env)
        raise ConfigurationError([f"create(): no provider found. Set one of {names}, or OLLAMA_HOST for a local Ollama, "
                                  "or pass providers=[...] / api_keys={...} / config=..."])
    caps = capabilities or ("chat-completion",)
    pools: dict[str, Any] = {}
    for cap in caps:
        try:
            resolve_capability(cap)
        except ValueError as exc:
            raise ConfigurationError([f"create(): {exc}"]) from None
        pool: dict[str, Any] = {"capability": cap}
        if strategy:
            pool["strategy"] = strategy
        pools[cap] = pool
    for spec in found.values():  # models without declared capabilities get their vendor's or inferred ones
        cfg = spec.get("config", {})
        fixed = CONNECTOR_CAPABILITIES.get(spec.get("connector", ""))
        cfg["models"] = [m if isinstance(m, dict) else {"id": m, "capabilities": list(fixed or infer_capabilities(m))}
                         for m in cfg.get("models", [])]
    return MeshClient({"providers": found, "pools": pools}, environ=env, **client_kwargs)
