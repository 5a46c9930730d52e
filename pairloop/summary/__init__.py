"""The end of a run: digest -> PR notes and PLAN.md (optionally with an LLM's prose), and the PR."""
