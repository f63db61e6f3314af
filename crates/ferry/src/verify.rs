//! TODO: stage module `verify`.
