"""`modelmesh secrets set|get|list|delete`: manage the secrets of a store that supports it.

The store is the one a configuration's `secrets:` section describes (`--config`), or one
named on the command line (`--store dotenv --path .env`, `--store encrypted-file --path
secrets.enc`, `--store keyring --service modelmesh`). Values never travel on the command
line: `set` reads the value from standard input when it is not a terminal, else from a
prompt that does not echo. `get` says whether a secret is set and its fingerprint; only
`get --show` prints the value. Nothing here logs a value.
"""
from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_secrets"]

_STORES = ("dotenv", "file", "encrypted-file", "keyring", "env")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("secrets", help="manage the secrets of a file, encrypted-file or keyring store")
    actions = p.add_subparsers(dest="action", required=True)
    for name, text in (("set", "store a secret (the value is read from stdin or a prompt)"),
                       ("get", "say whether a secret is set (--show prints its value)"),
                       ("list", "the names of the secrets held (never their values)"),
                       ("delete", "remove a secret")):
        a = actions.add_parser(name, help=text)
        if name != "list":
            a.add_argument("name")
        if name == "get":
            a.add_argument("--show", action="store_true", help="print the value itself")
        where = a.add_argument_group("the store (default: the configuration's secrets: section)")
        where.add_argument("--config", default=None, help="a configuration file whose secrets: section names the store")
        where.add_argument("--store", choices=_STORES, default=None)
        where.add_argument("--path", default=None, help="the store's file (dotenv, file, encrypted-file)")
        where.add_argument("--service", default=None, help="the keyring service name (default: modelmesh)")
        where.add_argument("--passphrase-env", default=None,
                           help="the variable holding the encrypted-file passphrase (default: MODELMESH_SECRETS_PASSPHRASE)")
    p.set_defaults(func=cmd_secrets)


def _store(args: argparse.Namespace) -> Any:
    from ._core._config import parse_secrets_config
    from ._core._errors import ConfigurationError
    from .config import read_config_data
    from .connectors.secrets import make_secret_store

    if (args.config is None) == (args.store is None):
        raise ConfigurationError(["secrets: name the store with either --config CONFIG or --store KIND"])
    if args.config is not None:
        data = read_config_data(args.config)
        section = data.get("secrets") if isinstance(data, dict) else None
        config = parse_secrets_config(section, source=args.config)
        base_dir: Path | None = Path(args.config).expanduser().resolve().parent
    else:
        raw: dict[str, Any] = {"store": args.store}
        for key, value in (("path", args.path), ("service", args.service), ("passphrase_env", args.passphrase_env)):
            if value is not None:
                raw[key] = value
        config = parse_secrets_config(raw, source="the command line")
        base_dir = None
    # a store's own cache would only hide what another process wrote: management reads afresh
    config = dataclasses.replace(config, cache_enabled=False)
    return make_secret_store(config, base_dir, create=args.action == "set")


def _read_value(name: str) -> str:
    if sys.stdin is not None and not sys.stdin.isatty():
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        return value[:-1] if value.endswith("\r") else value
    first = getpass.getpass(f"value for {name}: ")
    if getpass.getpass("again, to confirm: ") != first:
        from .connectors.secrets import SecretStoreError

        raise SecretStoreError(f"the two values for {name!r} differ; nothing was stored")
    return first


def cmd_secrets(args: argparse.Namespace) -> int:
    from ._core._keys import fingerprint
    from .connectors.secrets import SecretStoreError

    store = _store(args)
    if args.action == "list":
        if not callable(getattr(store, "list", None)):
            raise SecretStoreError(f"{store!r} cannot list its secrets")
        names = store.list()
        print("\n".join(names) if names else "no secrets")
        return 0
    if args.action == "get":
        value = store.get(args.name)
        if value is None:
            print(f"{args.name}: not set", file=sys.stderr)
            return 1
        print(value if args.show else f"{args.name}: set ({len(value)} characters, fingerprint {fingerprint(value)})")
        return 0
    if not callable(getattr(store, "set", None)) or not callable(getattr(store, "delete", None)):
        raise SecretStoreError(f"{store!r} is read-only: it cannot {args.action} secrets")
    if args.action == "set":
        value = _read_value(args.name)
        if not value:
            raise SecretStoreError(f"no value given for {args.name!r}; nothing was stored")
        store.set(args.name, value)
        print(f"{args.name}: stored (fingerprint {fingerprint(value)})")
        return 0
    if store.delete(args.name) is False:
        print(f"{args.name}: not set", file=sys.stderr)
        return 1
    print(f"{args.name}: deleted")
    return 0
