//! MUST, the truck-eOSAGO partner API (seed `must-api-partners.ru.md`): our calls'
//! bodies, its hooks, its insurers, its error codes and its helper methods.

pub mod api;
pub mod error_codes;
pub mod files;
pub mod helpers;
pub mod hook;
pub mod insurer;
