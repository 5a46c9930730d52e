"""pairloop: a worker agent and a reviewer agent, side by side in tmux, relayed by a file-watching bridge."""

__version__ = "0.1.0"
