"""Model artefacts: weights in safetensors (never pickle), with a JSON manifest beside them.

A model directory holds ``weights.safetensors`` (the GNN's tensors, the feature scalers, and the
LightGBM model in its own text format as a ``uint8`` tensor) and ``manifest.json`` (model
version, feature schema, training build id, metrics, training time, seed, and what is needed to
rebuild the modules). Loading checks the manifest's feature schema against the code's: a model
trained on other features would score garbage, so it is refused with a clear message.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ringscope.errors import RingScopeError
from ringscope.models.features import FEATURE_SCHEMA, FeatureSchema
from ringscope.models.gnn import GNNClassifier
from ringscope.models.risk import AccountRiskModel, RiskConfig

__all__ = [
    "ModelArtefactError",
    "ModelSchemaError",
    "current_model",
    "load_model",
    "save_model",
    "set_current_model",
]

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
FORMAT = 1


class ModelArtefactError(RingScopeError):
    """A model directory is missing, unreadable or inconsistent."""


class ModelSchemaError(ModelArtefactError):
    """The model was trained on a different feature schema than this code computes."""


def new_model_version(now: datetime | None = None) -> str:
    t = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"risk-{t}"


def save_model(
    model: AccountRiskModel,
    path: Path,
    *,
    version: str | None = None,
    build_id: str | None = None,
) -> dict[str, Any]:
    """Write the model to ``path`` (a new directory) and return its manifest."""
    if model.booster is None:
        raise ModelArtefactError("the model is not fitted; nothing to save")
    version = version or path.name
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    if model.gnn is not None:
        tensors.update(model.gnn.tensors())
    tree = model.booster.model_to_string(num_iteration=model.booster.best_iteration or None)
    tensors["tree.lightgbm"] = torch.from_numpy(np.frombuffer(tree.encode(), dtype=np.uint8).copy())
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "model_version": version,
        "feature_schema": FEATURE_SCHEMA.to_dict(),
        "training_build_id": build_id,
        "trained_at": datetime.now(UTC).isoformat(),
        "training_seconds": round(model.train_seconds, 2),
        "seed": model.config.seed,
        "config": _jsonable(model.config.__dict__),
        "choice": model.choice,
        "blend_weight": model.blend_weight,
        "platt": list(model.platt),
        "platt_tree": list(model.platt_tree) if model.platt_tree is not None else None,
        "metrics": model.metrics,
        "gnn": model.gnn.spec() if model.gnn is not None else None,
    }
    save_file(tensors, str(tmp / WEIGHTS), metadata={"model_version": version})
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path) if not path.exists() else _swap(tmp, path)
    return manifest


def _swap(tmp: Path, path: Path) -> None:
    for f in (WEIGHTS, MANIFEST):
        os.replace(tmp / f, path / f)
    tmp.rmdir()


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))  # type: ignore[no-any-return]


def read_manifest(path: Path) -> dict[str, Any]:
    f = path / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(f.read_text())
    except FileNotFoundError:
        raise ModelArtefactError(f"{f}: no model manifest here") from None
    except json.JSONDecodeError as exc:
        raise ModelArtefactError(f"{f}: not valid JSON ({exc})") from None
    return manifest


def check_schema(manifest: dict[str, Any], where: Path, schema: FeatureSchema) -> None:
    got = manifest.get("feature_schema") or {}
    if got.get("digest") != schema.digest():
        have: list[str] = list(got.get("account") or [])
        missing = [n for n in schema.account if n not in have]
        extra = [n for n in have if n not in schema.account]
        raise ModelSchemaError(
            f"{where}: the model was trained on feature schema version "
            f"{got.get('version')!r} (digest {got.get('digest')}), but this code computes "
            f"version {schema.version!r} (digest {schema.digest()}). Account features missing "
            f"from the model: {missing or 'none'}; unknown to this code: {extra or 'none'}. "
            "Retrain (ringscope rebuild --retrain) instead of loading it."
        )


def load_model(path: Path, *, schema: FeatureSchema = FEATURE_SCHEMA) -> AccountRiskModel:
    """Load a model directory written by :func:`save_model`; refuse a mismatched schema."""
    manifest = read_manifest(path)
    if manifest.get("format") != FORMAT:
        raise ModelArtefactError(f"{path}: artefact format {manifest.get('format')}, want {FORMAT}")
    check_schema(manifest, path, schema)
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (OSError, RuntimeError) as exc:
        raise ModelArtefactError(f"{path / WEIGHTS}: cannot read the weights ({exc})") from None
    model = AccountRiskModel(RiskConfig(**manifest["config"]))
    tree = bytes(tensors.pop("tree.lightgbm").numpy().tobytes()).decode()
    model.booster = lgb.Booster(model_str=tree)
    if manifest.get("gnn"):
        model.gnn = GNNClassifier.restore(manifest["gnn"], tensors)
    model.choice = str(manifest["choice"])
    model.blend_weight = float(manifest["blend_weight"])
    a, b = manifest["platt"]
    model.platt = (float(a), float(b))
    calib = manifest.get("platt_tree")  # absent from models saved before it existed
    if calib is not None:
        model.platt_tree = (float(calib[0]), float(calib[1]))
    elif model.choice == "tree":
        model.platt_tree = model.platt
    model.metrics = dict(manifest.get("metrics") or {})
    model.train_seconds = float(manifest.get("training_seconds") or 0.0)
    model.version = str(manifest["model_version"])
    return model


def set_current_model(root: Path, version: str) -> None:
    """Point ``<root>/current`` at a saved version (atomically, by rename)."""
    tmp = root / "current.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / "current")


def current_model(root: Path) -> Path | None:
    """The directory of the current model under ``root`` (``Settings.models_dir``), or None
    when none has been trained."""
    f = root / "current"
    if not f.exists():
        return None
    path = root / f.read_text().strip()
    return path if (path / MANIFEST).exists() else None
