//! BIMA, the credit-life insurer (seed `bima-bank-imon.ru.md`): the bodies of our
//! calls and its answers, and the sale form.

pub mod api;
pub mod sale;

#[cfg(test)]
mod sale_tests;
