"""HTTP and WebSocket edge (FastAPI)."""
