// HTTPClient module: see ARCHITECTURE.md.
