"""Messages out: tmux (the only libtmux import), screen rules, agent state, delivery, envelopes."""
