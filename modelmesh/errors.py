"""The error hierarchy, importable on its own: `from modelmesh.errors import RateLimitError`."""
from ._core._errors import *  # noqa: F401,F403
from ._core._errors import __all__  # noqa: F401
