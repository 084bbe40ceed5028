//! MUST, the truck-eOSAGO partner API (seed `must-api-partners.ru.md`): our calls'
//! bodies, its hooks, its insurers and its error codes.

pub mod api;
pub mod error_codes;
pub mod hook;
pub mod insurer;
