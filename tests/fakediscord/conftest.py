from .fixtures import fake_discord  # noqa: F401  (re-exported fixture)
