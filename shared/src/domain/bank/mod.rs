//! The bank's events in and our notifications out.

pub mod truck;
