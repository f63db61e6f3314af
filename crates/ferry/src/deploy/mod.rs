//! TODO: deploy stage.
