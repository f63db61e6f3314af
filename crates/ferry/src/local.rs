//! TODO: stage module `local`.
