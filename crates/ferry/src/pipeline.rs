//! TODO: stage module `pipeline`.
