"""One profile per agent TUI, the hook program the agents run, the sim agent, the role briefs."""
