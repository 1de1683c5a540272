// HTTPServer module: see ARCHITECTURE.md.
