// Engine module: see ARCHITECTURE.md.
