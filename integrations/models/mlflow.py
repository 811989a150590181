"""The ``mlflow`` registry: registered model versions, served through an alias, a stage, or both.

A model version's tags hold the attestation; MLflow has no approval status, so approval is the tag
``fireline.approved=true``. The artifact digest is the sha256 of the lines
``<relative path>\\0<file sha256>\\n`` of the version's artifact files sorted by path, computed on a
temporary download.

Consumers load ``models:/NAME@ALIAS`` or ``models:/NAME/STAGE``. Stages are deprecated since MLflow
2.9 in favour of aliases, yet registries in the middle of that migration still serve through the
``Production`` stage while no alias exists. So what serves is both pointers: the target's alias
(``champion`` by default) and the target's stage (``Production`` by default; ``stage: ""`` for
aliases only). A rollback moves every pointer that serves (the alias when it is set, the stage when
a version sits in it; the alias when neither does), draining clears both, and ``undo`` puts both back.

MLflow is the optional extra ``fireline[mlflow]`` and is imported only here, when used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flows.errors import ActionError, ConfigError, IntegrationError
from integrations.models.base import CHUNK, ModelVersion, RegistryAdapter, ServingState, hash_chunks, tree_digest
from integrations.models.base import KEY_APPROVED as APPROVED

INSTALL_HINT = "the mlflow registry needs MLflow: pip install 'fireline[mlflow]'"
RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


@contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Turn MLflow client errors into one-line fireline errors."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        code = str(getattr(e, "error_code", "MLFLOW_ERROR"))
        raise IntegrationError(f"mlflow: {what}: {e.message}", details={"code": code}) from e
    except OSError as e:
        raise IntegrationError(f"mlflow: {what}: {e}", retryable=True) from e


def _not_found(error: BaseException) -> bool:
    return str(getattr(error, "error_code", "")) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class MlflowAdapter(RegistryAdapter):
    """Versions of one registered model, served through an alias."""

    registry = "mlflow"

    @property
    def name(self) -> str:
        return str(self.target.model_name)

    @property
    def uri(self) -> str:
        uri = self.target.tracking_uri or self.ctx.settings.models.mlflow_tracking_uri
        if not uri:
            raise ConfigError("no MLflow tracking URI: set tracking_uri in the step or models.mlflow_tracking_uri")
        return uri

    @property
    def client(self) -> Any:
        def build() -> Any:
            try:
                from mlflow import MlflowClient
            except ImportError as e:
                raise ConfigError(INSTALL_HINT) from e
            # MLflow's defaults retry an unreachable server for minutes (7 retries, backoff 2, 120 s
            # timeout), which no step timeout can interrupt inside the library. Bounded unless set.
            for name, value in RETRY_DEFAULTS.items():
                os.environ.setdefault(name, value)
            return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

        return self.ctx.services.get_or_create(f"mlflow:client:{self.uri}", build)

    def _to_version(self, raw: Any) -> ModelVersion:
        tags = {str(k): str(v) for k, v in (raw.tags or {}).items()}
        return ModelVersion(
            id=str(raw.version),
            label=f"mlflow model {self.name} v{raw.version}",
            created_at=datetime.fromtimestamp(int(raw.creation_timestamp) / 1000, tz=UTC),
            artifact=str(raw.source),
            approved=tags.get(APPROVED) == "true",
            metadata=tags,
            extra={"status": raw.status, "run_id": raw.run_id, "stage": raw.current_stage},
            precision=timedelta(milliseconds=1),
        )

    def versions(self) -> Iterator[ModelVersion]:
        found: list[ModelVersion] = []
        token = None
        with mlflow_errors(f"list the versions of {self.name}"):
            while True:
                page = self.client.search_model_versions(f"name='{self.name}'", max_results=200, page_token=token)
                found += [self._to_version(v) for v in page]
                token = page.token
                if not token:
                    break
        # Listed whole: a registered model rarely has more than a few hundred versions.
        found.sort(key=lambda v: (v.created_at, int(v.id)), reverse=True)
        return iter(found)

    def load(self, version: ModelVersion) -> ModelVersion:
        return version  # the listing carries the tags already

    def version(self, version_id: str) -> ModelVersion:
        with mlflow_errors(f"read {self.name} v{version_id}"):
            return self._to_version(self.client.get_model_version(self.name, version_id))

    def compute_digest(self, version: ModelVersion) -> str:
        from mlflow.artifacts import download_artifacts

        scratch = Path(tempfile.mkdtemp(prefix="fireline-mlflow-"))
        try:
            with mlflow_errors(f"download the artifacts of {version.label}"):
                uri = self.client.get_model_version_download_uri(self.name, version.id)
                local = Path(download_artifacts(artifact_uri=uri, dst_path=str(scratch), tracking_uri=self.uri))
            files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
            digests: dict[str, str] = {}
            for path in files:
                relative = path.name if path == local else path.relative_to(local).as_posix()
                digests[relative] = self._file_sha256(path)
            return tree_digest(digests)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _file_sha256(self, path: Path) -> str:
        with path.open("rb") as fh:
            digest, size = hash_chunks(iter(lambda: fh.read(CHUNK), b""), self.ctx)
        self.bytes_read += size
        return digest

    def _alias_version(self) -> str | None:
        from mlflow.exceptions import MlflowException

        alias = self.target.alias
        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as e:
            if _not_found(e):
                return None
            raise IntegrationError(f"mlflow: read alias {self.name}@{alias}: {e.message}") from e

    def _transition(self, version: str, stage: str, *, archive_existing: bool = False) -> None:
        with warnings.catch_warnings(), mlflow_errors(f"move {self.name} v{version} to stage {stage}"):
            # Deprecated since MLflow 2.9, and still what stage-loading consumers follow.
            warnings.simplefilter("ignore", FutureWarning)
            self.client.transition_model_version_stage(
                self.name, version, stage, archive_existing_versions=archive_existing
            )

    def serving(self) -> ServingState:
        stage = self.target.stage
        stages = {v.id: str(v.extra.get("stage") or "None") for v in self.versions()}
        in_stage = sorted((vid for vid, s in stages.items() if stage and s == stage), key=int)
        by_alias = self._alias_version()
        served = sorted({*in_stage, *([by_alias] if by_alias else [])}, key=int)
        return ServingState(
            versions=served,
            detail={
                "alias": self.target.alias,
                "version": by_alias,
                "stage": stage,
                "stage_versions": in_stage,
                "stages": stages,
            },
        )

    def other_pointers(self) -> dict[str, str]:
        """The model's other aliases (``NAME@ALIAS`` -> version): a consumer may load any of them."""
        with mlflow_errors(f"read the aliases of {self.name}"):
            aliases = dict(self.client.get_registered_model(self.name).aliases or {})
        return {f"{self.name}@{a}": str(v) for a, v in sorted(aliases.items()) if a != self.target.alias}

    def _pointers(self, state: ServingState) -> str:
        alias = f"{self.name}@{self.target.alias} -> v{state.detail['version']}" if state.detail["version"] else ""
        staged = ", ".join(f"v{v}" for v in state.detail["stage_versions"])
        stage = f"{self.name}/{self.target.stage} -> {staged}" if staged else ""
        return "; ".join(p for p in (alias, stage) if p) or "no alias, no version in the stage"

    def status(self) -> tuple[bool, str]:
        state = self.serving()
        if not state.versions:
            return False, f"{self.name}: nothing serves ({self._pointers(state)})"
        statuses = {vid: self.version(vid).extra.get("status") for vid in state.versions}
        ready = all(s == "READY" for s in statuses.values())
        return ready, f"{self._pointers(state)} ({', '.join(f'v{k} {v}' for k, v in statuses.items())})"

    def deploy(self, version: ModelVersion) -> list[str]:
        state = self.serving()
        by_alias, in_stage = state.detail["version"], state.detail["stage_versions"]
        changes: list[str] = []
        if by_alias or not in_stage:
            with mlflow_errors(f"move alias {self.target.alias} to v{version.id}"):
                self.client.set_registered_model_alias(self.name, self.target.alias, version.id)
            was = f"v{by_alias}" if by_alias else "unset"
            changes.append(f"moved alias {self.name}@{self.target.alias} to v{version.id} (was {was})")
        if in_stage and in_stage != [version.id]:
            self._transition(version.id, self.target.stage, archive_existing=True)
            was = ", ".join(f"v{v}" for v in in_stage)
            changes.append(f"moved v{version.id} to stage {self.target.stage}; archived {was}")
        return changes

    def restore(self, state: ServingState) -> list[str]:
        changes: list[str] = []
        wanted, now = state.detail.get("version"), self._alias_version()
        if wanted != now:
            if wanted is None:
                with mlflow_errors(f"delete alias {self.target.alias}"):
                    self.client.delete_registered_model_alias(self.name, self.target.alias)
                changes.append(f"rolled forward: deleted alias {self.name}@{self.target.alias} (as before)")
            else:
                with mlflow_errors(f"move alias {self.target.alias} back to v{wanted}"):
                    self.client.set_registered_model_alias(self.name, self.target.alias, str(wanted))
                changes.append(f"rolled forward: alias {self.name}@{self.target.alias} back to v{wanted}")
        before: dict[str, str] = state.detail.get("stages", {})
        current = {v.id: str(v.extra.get("stage") or "None") for v in self.versions()}
        # Versions leave the stage first, so a version put back into it is never archived by another.
        moves = sorted(
            ((vid, stage) for vid, stage in before.items() if current.get(vid, stage) != stage),
            key=lambda move: move[1] == self.target.stage,
        )
        for vid, stage in moves:
            self._transition(vid, stage)
            changes.append(f"rolled forward: v{vid} back to stage {stage}")
        return changes

    def drain(self) -> list[str]:
        state = self.serving()
        changes: list[str] = []
        if state.detail["version"] is not None:
            with mlflow_errors(f"delete alias {self.target.alias}"):
                self.client.delete_registered_model_alias(self.name, self.target.alias)
            changes.append(f"deleted alias {self.name}@{self.target.alias} (was v{state.detail['version']})")
        for vid in state.detail["stage_versions"]:
            self._transition(vid, "Archived")
            changes.append(f"moved v{vid} out of stage {self.target.stage} (Archived)")
        return changes

    def write_metadata(self, version: ModelVersion, updates: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        with mlflow_errors(f"tag {version.label}"):
            for key, value in updates.items():
                self.client.set_model_version_tag(self.name, version.id, key, value)
            for key in remove:
                if key in (version.metadata or {}):
                    self.client.delete_model_version_tag(self.name, version.id, key)

    def invoke(self, payload: str, content_type: str) -> str:
        raise ActionError("smoke inputs are not supported for the mlflow registry (it has no serving endpoint to call)")

    def describe(self) -> dict[str, Any]:
        with mlflow_errors(f"describe {self.name}"):
            model = self.client.get_registered_model(self.name)
        return {
            "target": self.target.label,
            "aliases": dict(model.aliases or {}),
            "tags": dict(model.tags or {}),
            "serving": self.serving().model_dump(mode="json"),
        }
