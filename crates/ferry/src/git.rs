//! TODO: stage module `git`.
