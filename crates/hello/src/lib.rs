//! The hello service.
