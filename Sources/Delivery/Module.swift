// Delivery module: see ARCHITECTURE.md.
