// Emulators module: see ARCHITECTURE.md.
