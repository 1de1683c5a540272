// Store module: see ARCHITECTURE.md.
