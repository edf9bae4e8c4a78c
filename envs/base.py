"""What every environment class of ours shares."""

from __future__ import annotations


class SettingsIdentity:
    """Environments equal and hash by their constructor settings, ``_config()``.

    gymnax jits ``step``/``reset`` with ``self`` static, so two environments built with the same
    settings share one compiled function, and different settings never do.
    """

    def _config(self) -> tuple:
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._config()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._config()}"
