//! `expires_in`: the parser agrees with the grammar `^[0-9]+(ns|us|ms|s|m|h)$`
//! (greater than zero, at most the maximum) on any input, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reclaim_component::fuzzing::{LifespanError, parse_lifespan};

/// The grammar, written the slow and obvious way.
fn expected(input: &str, max_ns: u64) -> Result<u64, LifespanError> {
    let digits: String = input.chars().take_while(char::is_ascii_digit).collect();
    let unit = &input[digits.len()..];
    let scale: u128 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(LifespanError::Unparsable),
    };
    if digits.is_empty() {
        return Err(LifespanError::Unparsable);
    }
    if digits.bytes().all(|b| b == b'0') {
        return Err(LifespanError::NotInFuture);
    }
    let significant = digits.trim_start_matches('0');
    match significant
        .parse::<u128>()
        .ok()
        .and_then(|v| v.checked_mul(scale))
    {
        Some(ns) if ns <= u128::from(max_ns) => Ok(ns as u64),
        _ => Err(LifespanError::OverMaximum(max_ns)),
    }
}

fuzz_target!(|input: (&str, u64)| {
    let (text, max_ns) = input;
    assert_eq!(
        parse_lifespan(text, max_ns),
        expected(text, max_ns),
        "{text:?}"
    );
});
