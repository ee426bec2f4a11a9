"""Loading configuration: the I/O half of the configuration layer.

Theory of operation: `load_config` turns whatever the caller has (a path to a YAML or
JSON file, a dict, or an already built `MeshConfig`) into plain data, builds a secret
resolver from the data's own `secrets:` section unless one is given, and hands both to
the pure `parse_config`. Everything that touches the world lives here: reading the
file, parsing YAML (imported lazily, so `import modelmesh` stays light), and opening
the secret store, whose relative paths are taken from the config file's directory.

Every failure is a `ConfigurationError`: a missing file names the path, a YAML or
JSON syntax error names file, line and column, and the problems of the secret store
are reported together with those of the configuration itself.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping

from modelmesh._core._config import parse_config_partial, parse_secrets_config
from modelmesh._core._config_schema import MeshConfig
from modelmesh._core._errors import ConfigurationError
from modelmesh.connectors.secrets import make_secret_store

__all__ = ["load_config", "load_config_partial", "Loaded", "read_config_data"]

_SUFFIXES = (".yaml", ".yml", ".json")
Resolver = Callable[[str], "str | None"]


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | MeshConfig, *,
                resolve_secret: Resolver | None = None) -> MeshConfig:
    """A validated `MeshConfig` from a file path, a dict, or a MeshConfig (returned as is)."""
    loaded = load_config_partial(source, resolve_secret=resolve_secret)
    if loaded.problems or loaded.config is None:
        raise ConfigurationError(loaded.problems, source=loaded.source)
    return loaded.config


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """What `load_config_partial` found: a best-effort config (bad values at their
    defaults; None when there is nothing to read) and every problem so far."""

    config: MeshConfig | None
    problems: tuple[str, ...]
    source: str | None
    store: Any = None  # the secret store the configuration's `secrets:` section made (None: none, or one given)


def load_config_partial(source: str | os.PathLike[str] | Mapping[str, Any] | MeshConfig, *,
                        resolve_secret: Resolver | None = None, strategy_names: Collection[str] = ()) -> Loaded:
    """Like `load_config`, but problems are returned beside a best-effort config, so that
    `modelmesh.build` can add its own and report them all at once. A file that cannot be
    read or parsed still raises: there is nothing to go on with. `strategy_names` are the
    user strategies given by name (a pool's `strategy:` may name them)."""
    if isinstance(source, MeshConfig):
        return Loaded(config=source, problems=(), source=None)
    if isinstance(source, Mapping):
        data: Any = source
        name, base_dir = None, Path.cwd()
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        data = read_config_data(path)
        name, base_dir = str(path), path.resolve().parent
    else:
        raise TypeError("config must be a path to a .yaml/.yml/.json file, a dict or a "
                        f"MeshConfig, got {type(source).__name__}")
    store_problems: list[str] = []
    store = None
    if resolve_secret is None:
        store = _default_store(data, base_dir, store_problems)
        resolve_secret = store.get if store is not None else (lambda name: None)
    config, problems = parse_config_partial(data, resolve_secret=resolve_secret, strategy_names=strategy_names)
    return Loaded(config=config, problems=(*store_problems, *problems), source=name, store=store)


def read_config_data(path: str | os.PathLike[str]) -> Any:
    """The plain data in a .yaml/.yml/.json file; ConfigurationError for every failure."""
    path = Path(path)
    where = str(path)
    if path.suffix.lower() not in _SUFFIXES:
        raise ConfigurationError(
            [f"{where}: unsupported file type {path.suffix!r} (expected .yaml, .yml or .json)"],
            source=where)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError([f"config file not found: {where}"], source=where) from None
    except UnicodeDecodeError:
        raise ConfigurationError([f"{where}: not UTF-8 text"], source=where) from None
    except OSError as exc:
        raise ConfigurationError([f"{where}: cannot read ({exc.strerror or exc})"],
                                 source=where) from None
    if path.suffix.lower() == ".json":
        return _parse_json(text, where)
    return _parse_yaml(text, where)


@contextmanager
def _beyond_reason(where: str) -> Iterator[None]:
    """What either parser raises for a document built to exhaust it, as a ConfigurationError."""
    try:
        yield
    except ConfigurationError:
        raise
    except RecursionError:
        raise ConfigurationError([f"{where}: nested too deeply"], source=where) from None
    except ValueError:  # an integer of more than 4300 digits
        raise ConfigurationError([f"{where}: a number too long to read"], source=where) from None


def _parse_json(text: str, where: str) -> Any:
    with _beyond_reason(where):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                [f"{where}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"],
                source=where) from None


def _parse_yaml(text: str, where: str) -> Any:
    import yaml  # lazily: only file-based configuration needs it

    duplicates: list[str] = []
    loader_class = _strict_loader(yaml, duplicates, where)
    with _beyond_reason(where):
        try:
            data = yaml.load(text, Loader=loader_class)  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            what = exc.problem or exc.context or "invalid YAML"
            raise ConfigurationError([f"{where}: {at}YAML syntax error: {what}"],
                                     source=where) from None
        except yaml.YAMLError as exc:
            raise ConfigurationError([f"{where}: YAML error: {exc}"], source=where) from None
    if duplicates:
        raise ConfigurationError(duplicates, source=where)
    return {} if data is None else data


# What aliases may add to a document, in nodes. PyYAML shares an aliased node rather than
# copying it, but everything that walks the data (our readers, json.dumps, a repr) meets
# each alias as a full copy: nine lines of nine aliases each are 9**9 values.
MAX_ALIASED_NODES = 10_000


def _strict_loader(yaml: Any, duplicates: list[str], where: str) -> type:
    """A SafeLoader that reports duplicate keys, which PyYAML silently lets win, and refuses
    aliases that refer to themselves or expand beyond MAX_ALIASED_NODES ("billion laughs")."""

    class StrictLoader(yaml.SafeLoader):
        def construct_document(self, node: Any) -> Any:
            problem = _alias_problem(node)
            if problem is not None:
                raise ConfigurationError([f"{where}: {problem}"], source=where)
            return super().construct_document(node)

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        loader.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: construct_mapping below reports it
                continue
            if duplicate:
                mark = key_node.start_mark
                duplicates.append(f"{where}: line {mark.line + 1}, column {mark.column + 1}: "
                                  f"duplicate key {key!r}")
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 construct_mapping)
    return StrictLoader


def _alias_problem(root: Any) -> str | None:
    """Why the composed YAML graph under `root` is unsafe to walk, or None.

    One walk without recursion, each node once: a node's expanded size (counting every
    alias as the copy it stands for) is known when its children's are. A node met again
    while its own children are still open is its own ancestor: an alias to itself.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_ALIASED_NODES + len(sizes):  # more than aliases may add
                return (f"{_at(node)}aliases expand this value to more than {MAX_ALIASED_NODES} "
                        "values (a \"billion laughs\"?)")
            continue
        if key in sizes:
            continue
        if key in open_:
            return f"{_at(node)}an alias refers to itself (the value would never end)"
        open_.add(key)
        stack.append((node, True))
        stack += [(c, False) for c in children]
    return None


def _children(node: Any) -> list[Any]:
    value = getattr(node, "value", None)
    if not isinstance(value, list):
        return []  # a scalar
    return [n for item in value for n in (item if isinstance(item, tuple) else (item,))]


def _at(node: Any) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: "


def _default_store(data: Any, base_dir: Path, problems: list[str]) -> Any:
    """The secret store the configuration's own `secrets:` section describes (None: none).

    A bad `secrets:` section is left for parse_config to report with everything else;
    a store that cannot be opened (a missing .env file) adds its problem to `problems`
    and resolves nothing, so each reference is reported too.
    """
    if not isinstance(data, Mapping):
        return None
    try:
        secrets = parse_secrets_config(data.get("secrets"))
    except ConfigurationError:
        return None
    try:
        return make_secret_store(secrets, base_dir)
    except ConfigurationError as exc:
        if secrets.fail_on_missing:
            problems.extend(exc.problems)
        return None
