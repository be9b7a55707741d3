"""The current account-risk model of a long-running reader (the API), loaded once per version."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ringscope.errors import RingScopeError

if TYPE_CHECKING:
    from ringscope.models.risk import AccountRiskModel


class NoModelError(RingScopeError):
    """No model has been trained yet."""


class ModelStore:
    """The current account-risk model, loaded once per version and shared by all requests.

    ``<models dir>/current`` is read on each call (a small file), so a rebuild's new model
    is picked up without a restart; the previous version is dropped when the next one loads.
    """

    def __init__(self, root: Path) -> None:
        self.root = root  # Settings.models_dir
        self._lock = threading.Lock()
        self._loaded: tuple[Path, AccountRiskModel] | None = None

    def current(self) -> AccountRiskModel:
        # artefacts: heavy (torch, lightgbm), only a server that explains needs it.
        from ringscope.models.artefacts import current_model, load_model

        path = current_model(self.root)
        if path is None:
            raise NoModelError("No trained model yet: run `ringscope rebuild` first.")
        with self._lock:
            if self._loaded is None or self._loaded[0] != path:
                self._loaded = (path, load_model(path))
            return self._loaded[1]
