"""Optional offline token counting, for servers that send no usage.

Loads a local ``tokenizer.json`` with the ``tokenizers`` package (install it yourself; it is not
a dependency, since the route's usage or content parts suffice for most runs).
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import InputError


class TokenCounter:
    def __init__(self, tokenizer, name: str) -> None:
        self._tok = tokenizer
        self.name = name

    def __call__(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)


def load_tokenizer(path: str) -> TokenCounter:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--tokenizer: {p} not found (a local tokenizer.json; nothing is downloaded)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputError("--tokenizer needs the 'tokenizers' package: pip install tokenizers") from None
    try:
        return TokenCounter(Tokenizer.from_file(str(p)), p.parent.name or p.stem)
    except Exception as exc:
        raise InputError(f"--tokenizer: {p} could not be loaded: {exc}") from None
