"""A run's life: where runs live, start and stop, the tmux layout, the launch file, configuration."""
