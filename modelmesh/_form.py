"""A multipart/form-data request body (OpenAI's transcriptions, translations, image edits, file uploads)
read into the request dict the mesh sends: fields as values, files as `Upload`s.

How it works: the stdlib's email parser reads MIME multipart, and form-data is MIME
multipart (RFC 7578): the body is parsed with its Content-Type header put in front, byte
for byte (binary file parts come back exactly, CRLF and all; RFC 2231 filenames are
decoded). Field names are spelled as the openai SDK spells them, and as the codecs spell
them back when they send (`_core.codecs._base.form_fields`): `name[]` repeated is a list,
`name[key]` an object. A few parameters are numbers or booleans in OpenAI's API; a form
carries only text, so those are read back as what they are, and a value that is not one is
refused by name. Imported only when a multipart request arrives: `import modelmesh` (and
the proxy's other routes) never load the email package for it.
"""
from __future__ import annotations

import email.parser
import email.policy
import os
from typing import Any, NamedTuple

from ._core._types import Upload

__all__ = ["FormError", "FormPart", "parse_form", "form_parts", "FILE_FIELDS"]

# the form fields that are files, per operation; any other field is text
FILE_FIELDS = {"transcriptions": ("file",), "translations": ("file",), "image_edits": ("image", "mask"),
               "files_create": ("file",)}
_NUMBERS: dict[str, type] = {"temperature": float, "n": int, "output_compression": int, "partial_images": int}
_BOOLEANS = frozenset({"stream"})


class FormError(ValueError):
    """What is wrong with a form, in words a caller can act on; `param` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class FormPart(NamedTuple):
    name: str
    filename: str | None
    content_type: str
    charset: str | None
    data: bytes  # exactly as sent


def form_parts(body: bytes, content_type: str) -> list[FormPart]:
    """Each part of a multipart/form-data body, in order."""
    if "boundary=" not in content_type.lower():
        raise FormError("The multipart/form-data body has no boundary in its Content-Type header")
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise FormError("The multipart/form-data body could not be read as a form")
    out = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise FormError("A part of the multipart/form-data body has no field name")
        data = part.get_payload(decode=True)
        filename = part.get_filename()
        out.append(FormPart(name, filename if isinstance(filename, str) else None, part.get_content_type(),
                            part.get_content_charset(), data if isinstance(data, bytes) else b""))
    return out


def parse_form(op: str, body: bytes, content_type: str) -> dict[str, Any]:
    """The form in `body` as a request dict for `op` (see the module's docstring)."""
    files = FILE_FIELDS.get(op, ())
    out: dict[str, Any] = {}
    for name, filename, kind, charset, payload in form_parts(body, content_type):
        base = name[:-2] if name.endswith("[]") else name
        if base in files:
            _add(out, name, _upload(name, filename, kind, payload))
            continue
        try:
            text = payload.decode(charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise FormError(f"The form field '{name}' is not UTF-8 text", name) from None
        _add(out, name, text)
    for name, value in list(out.items()):
        out[name] = _typed(name, value)
    return out


def _upload(name: str, filename: Any, content_type: str, data: bytes) -> Upload:
    if not data:
        raise FormError(f"The file '{name}' is empty", name)
    shown = os.path.basename(filename) if isinstance(filename, str) and filename else name.rstrip("[]") or "upload"
    shown = "".join(c for c in shown if c not in '"\r\n') or "upload"
    return Upload(filename=shown, data=data, content_type=content_type or "application/octet-stream")


def _add(out: dict[str, Any], name: str, value: Any) -> None:
    if name.endswith("[]"):
        out.setdefault(name[:-2], []).append(value)
        return
    if name.endswith("]") and "[" in name:
        outer, _, inner = name[:-1].partition("[")
        holder = out.setdefault(outer, {})
        if not isinstance(holder, dict):
            raise FormError(f"The form field '{outer}' is given both as a value and as an object", outer)
        holder[inner] = value
        return
    if name in out:
        raise FormError(f"The form field '{name}' is given more than once (a list is spelled '{name}[]')", name)
    out[name] = value


def _typed(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _BOOLEANS:
        if value.lower() not in ("true", "false"):
            raise FormError(f"The form field '{name}' must be true or false, got {value[:20]!r}", name)
        return value.lower() == "true"
    kind = _NUMBERS.get(name)
    if kind is None:
        return value
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise FormError(f"The form field '{name}' must be {what}, got {value[:20]!r}", name) from None
