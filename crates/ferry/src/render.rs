//! TODO: stage module `render`.
