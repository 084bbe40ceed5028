//! BIMA, the credit-life insurer (seed `bima-bank-imon.ru.md`).

pub mod api;
pub mod loan;
pub mod process;
pub mod sale;

#[cfg(test)]
mod sale_tests;
