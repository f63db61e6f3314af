//! Fake Kubernetes API server.
