"""The OpenAI-compatible proxy: a WSGI app over one MeshClient per process, and `modelmesh serve`.

    modelmesh serve modelmesh.yaml --workers 2          # Granian: pip install 'modelmesh-lite[proxy]'
    gunicorn -k gthread --threads 16 'modelmesh.proxy:create_app("modelmesh.yaml")'

See docs/proxy.md. `import modelmesh` does not import this package.
"""
from ._app import ProxyApp
from ._serve import create_app, json_lines

__all__ = ["ProxyApp", "create_app", "json_lines"]
