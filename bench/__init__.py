"""Load-testing and benchmarking harness for streaming LLM chat routes."""

__version__ = "0.1.0"
