"""An artifact set Kubeboard holds: one per Kubernetes version and architecture, its files on
disk under ``settings.ARTIFACTS_DIR`` and, here, each file's path, size and SHA-256 (the truth a
machine's copy is checked against)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse


class ArtifactSet(models.Model):
    """Shared by every cluster of that version (no team owns it): superusers import and delete
    sets, anyone signed in sees which exist (core.permissions.can_manage_artifacts)."""

    kubernetes_version = models.CharField(max_length=32)
    architecture = models.CharField(max_length=16)
    source = models.CharField(max_length=300, help_text="where it was imported from (a directory or an upload)")
    total_bytes = models.BigIntegerField(default=0)
    imported_at = models.DateTimeField(auto_now_add=True)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kubernetes_version", "architecture"], name="one_artifact_set_per_version")
        ]
        ordering = ["-kubernetes_version", "architecture"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return f"{self.kubernetes_version}-{self.architecture}"

    @property
    def directory(self) -> Path:
        return Path(settings.ARTIFACTS_DIR) / self.name

    def get_absolute_url(self) -> str:
        return reverse("artifacts:detail", args=[self.name])


class ArtifactFile(models.Model):
    artifact_set = models.ForeignKey(ArtifactSet, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=200)  # relative, as SHA256SUMS lists it
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    # For images/*.tar: the image references the archive holds (from its index.json).
    images = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["artifact_set", "path"], name="one_row_per_set_file")]
        ordering = ["path"]

    def __str__(self) -> str:
        return f"{self.artifact_set.name}/{self.path}"

    @property
    def local_path(self) -> Path:
        return self.artifact_set.directory / self.path
