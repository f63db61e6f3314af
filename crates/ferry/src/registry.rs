//! TODO: stage module `registry`.
