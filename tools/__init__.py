"""Developer tooling for Kubeboard (test bed, build scripts)."""
