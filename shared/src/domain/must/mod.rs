//! MUST, the truck-eOSAGO partner API (seed `must-api-partners.ru.md`).

pub mod api;
pub mod error_codes;
pub mod hook;
pub mod insurer;
pub mod process;
