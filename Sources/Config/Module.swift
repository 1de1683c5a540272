// Config module: see ARCHITECTURE.md.
