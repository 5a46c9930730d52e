"""The relay engine: messages, ledger, watcher, targets, delivery and agent state.

This package never imports ``pairloop``: the product depends on the engine, not the other way round.
"""
