//! TODO: stage module `image`.
