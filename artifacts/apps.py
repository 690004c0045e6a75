from django.apps import AppConfig


class ArtifactsConfig(AppConfig):
    """Air-gapped artifact sets: the binaries, unit files and images of one Kubernetes version,
    held by Kubeboard and pushed to machines by the Prepare operation (workflows/prepare*.py)."""

    name = "artifacts"
    verbose_name = "Artifact sets"
