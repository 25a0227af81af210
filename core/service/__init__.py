"""The system service: apps call one shared aios over HTTP (TCP loopback or a Unix socket).

Apps never load models; the service owns them (through one ``Orchestrator``), with per-app
credentials, permissions and quotas, and decides where each request runs. Build the ASGI app
with ``create_app``; ``aios serve`` runs it (``aios.service.server``).
"""

from aios.service.app import create_app

__all__ = ["create_app"]
