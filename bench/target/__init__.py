"""The reference target: an honest stand-in for the streaming chat route (see ``app.py``)."""

from bench.target.app import Target, TargetConfig, Truth
from bench.target.auth import AuthConfig
from bench.target.server import TargetProcess, serve

__all__ = ["AuthConfig", "Target", "TargetConfig", "TargetProcess", "Truth", "serve"]
