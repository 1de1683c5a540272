// Daemon module: see ARCHITECTURE.md.
