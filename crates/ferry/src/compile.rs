//! TODO: stage module `compile`.
