"""Recordings of the agent panes: the recorder process tmux pipes each pane into, the markers it takes from the
ledger, and the tmux side that keeps every live agent pane recorded."""
