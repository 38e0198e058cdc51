"""Real-time scoring: the champion of each use case behind an HTTP API, with the batch path's answers."""
