"""End-to-end tests: the real claude and codex programs, pinned, against a scripted local model server."""
