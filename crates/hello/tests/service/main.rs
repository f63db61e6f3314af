//! hello's integration tests: the real binary over real sockets, in one test binary so they
//! link once and run side by side.

mod api;
mod connections;
mod shutdown;
mod support;
