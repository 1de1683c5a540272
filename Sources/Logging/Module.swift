// Logging module: see ARCHITECTURE.md.
