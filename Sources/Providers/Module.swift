// Providers module: see ARCHITECTURE.md.
