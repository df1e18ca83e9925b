//! Lifespans: Kratos' `expires_in` grammar and human-readable durations.

/// Nanoseconds in each unit Kratos accepts, matched longest suffix first so
/// that `ms` is not read as `m` followed by garbage.
const UNITS: [(&str, u128); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Why an `expires_in` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LifespanError {
    /// Not `^[0-9]+(ns|us|ms|s|m|h)$`.
    Unparsable,
    /// Zero: the credential would be born expired.
    NotInFuture,
    /// Longer than the configured maximum (in nanoseconds).
    OverMaximum(u64),
}

impl LifespanError {
    /// A message that tells the caller what is accepted.
    pub fn message(&self, given: &str) -> String {
        match self {
            Self::Unparsable => format!(
                "Unable to parse \"expires_in\" ({given:?}) as a duration string: expected a \
                 whole number followed by exactly one unit, matching ^[0-9]+(ns|us|ms|s|m|h)$, \
                 for example \"30m\" or \"1h\""
            ),
            Self::NotInFuture => {
                "\"expires_in\" must result to a future time: it must be greater than zero"
                    .to_string()
            }
            Self::OverMaximum(max) => format!(
                "\"expires_in\" ({given:?}) exceeds the maximum lifespan of {}",
                compact(*max)
            ),
        }
    }
}

/// Parses `expires_in` exactly as `^[0-9]+(ns|us|ms|s|m|h)$`, greater than
/// zero and at most `max_ns`; returns nanoseconds. Written by hand because the
/// duration crates accept more (`1d`, `1h30m`, spaces) than the seed allows.
pub fn parse_lifespan(input: &str, max_ns: u64) -> Result<u64, LifespanError> {
    let digits_end = input
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(LifespanError::Unparsable)?;
    let (digits, unit) = input.split_at(digits_end);
    if digits.is_empty() {
        return Err(LifespanError::Unparsable);
    }
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, scale)| *scale)
        .ok_or(LifespanError::Unparsable)?;
    // Any digit string longer than 40 overflows u128 and is over any maximum.
    let value = digits
        .parse::<u128>()
        .ok()
        .and_then(|v| v.checked_mul(scale));
    match value {
        Some(0) => Err(LifespanError::NotInFuture),
        Some(ns) if ns <= u128::from(max_ns) => Ok(ns as u64),
        _ if digits.bytes().all(|b| b == b'0') => Err(LifespanError::NotInFuture),
        _ => Err(LifespanError::OverMaximum(max_ns)),
    }
}

/// `1h30m`-style rendering for messages to administrators.
pub fn compact(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    if secs == 0 {
        return format!("{ns}ns");
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

/// "1 hour 30 minutes" for mail, in English or German (the languages whose
/// templates ship in the component); other languages get English.
pub fn human(ns: u64, locale: &str) -> String {
    let german = locale.split(['-', '_']).next() == Some("de");
    let minutes = ns.div_ceil(60_000_000_000);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let names: [(&str, &str); 3] = if german {
        [
            ("Tag", "Tage"),
            ("Stunde", "Stunden"),
            ("Minute", "Minuten"),
        ]
    } else {
        [("day", "days"), ("hour", "hours"), ("minute", "minutes")]
    };
    let parts: Vec<String> = [days, hours, mins]
        .iter()
        .zip(names)
        .filter(|(value, _)| **value > 0)
        .map(|(value, (one, many))| format!("{value} {}", if *value == 1 { one } else { many }))
        .collect();
    if parts.is_empty() {
        return if german { "1 Minute" } else { "1 minute" }.to_string();
    }
    parts.join(if german { " und " } else { " " })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000_000_000;

    #[test]
    fn accepts_every_unit_of_the_seed_grammar() {
        let max = 24 * HOUR;
        assert_eq!(parse_lifespan("1ns", max), Ok(1));
        assert_eq!(parse_lifespan("5us", max), Ok(5_000));
        assert_eq!(parse_lifespan("7ms", max), Ok(7_000_000));
        assert_eq!(parse_lifespan("30s", max), Ok(30_000_000_000));
        assert_eq!(parse_lifespan("90m", max), Ok(90 * 60_000_000_000));
        assert_eq!(parse_lifespan("1h", max), Ok(HOUR));
        assert_eq!(parse_lifespan("0001h", max), Ok(HOUR));
    }

    #[test]
    fn refuses_what_the_seed_grammar_does_not_match() {
        for bad in [
            "1d", "1h30m", "-1h", " 1h", "1h ", "", "1H", "h", "1", "1.5h", "+1h", "1hh",
        ] {
            assert_eq!(
                parse_lifespan(bad, u64::MAX),
                Err(LifespanError::Unparsable),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_zero_in_any_unit() {
        assert_eq!(parse_lifespan("0s", HOUR), Err(LifespanError::NotInFuture));
        assert_eq!(
            parse_lifespan("000ns", HOUR),
            Err(LifespanError::NotInFuture)
        );
    }

    #[test]
    fn refuses_more_than_the_maximum_even_when_it_overflows() {
        assert_eq!(
            parse_lifespan("2h", HOUR),
            Err(LifespanError::OverMaximum(HOUR))
        );
        let huge = "9".repeat(60) + "h";
        assert_eq!(
            parse_lifespan(&huge, HOUR),
            Err(LifespanError::OverMaximum(HOUR))
        );
        assert_eq!(parse_lifespan("60m", HOUR), Ok(HOUR));
    }

    #[test]
    fn messages_state_the_accepted_format() {
        assert!(
            LifespanError::Unparsable
                .message("1d")
                .contains("^[0-9]+(ns|us|ms|s|m|h)$")
        );
        assert!(
            LifespanError::OverMaximum(HOUR)
                .message("2h")
                .contains("1h")
        );
    }

    #[test]
    fn human_durations_read_naturally() {
        assert_eq!(human(HOUR, "en"), "1 hour");
        assert_eq!(human(90 * 60_000_000_000, "en"), "1 hour 30 minutes");
        assert_eq!(human(2 * HOUR, "de-AT"), "2 Stunden");
        assert_eq!(human(25 * HOUR, "de"), "1 Tag und 1 Stunde");
        assert_eq!(human(1, "en"), "1 minute");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        const SUFFIXES: [&str; 6] = ["ns", "us", "ms", "s", "m", "h"];

        proptest! {
            /// Every well-formed lifespan is read back as its value in
            /// nanoseconds, or refused as over the maximum: never garbled.
            #[test]
            fn a_number_and_a_unit_parse_to_their_nanoseconds(
                value in 1u64..=10_000_000,
                unit in 0usize..6,
                max_ns in any::<u64>(),
            ) {
                let text = format!("{value}{}", SUFFIXES[unit]);
                let ns = u128::from(value) * UNITS.iter().find(|(n, _)| *n == SUFFIXES[unit]).unwrap().1;
                let expected = if ns <= u128::from(max_ns) {
                    Ok(ns as u64)
                } else {
                    Err(LifespanError::OverMaximum(max_ns))
                };
                prop_assert_eq!(parse_lifespan(&text, max_ns), expected);
            }

            /// Leading zeros change nothing; a value of zero is never a
            /// lifespan, however it is written.
            #[test]
            fn leading_zeros_are_the_same_number_and_zero_is_refused(
                value in 0u64..=1_000_000,
                zeros in 0usize..30,
                unit in 0usize..6,
            ) {
                let plain = format!("{value}{}", SUFFIXES[unit]);
                let padded = format!("{}{plain}", "0".repeat(zeros));
                prop_assert_eq!(parse_lifespan(&padded, u64::MAX), parse_lifespan(&plain, u64::MAX));
                if value == 0 {
                    prop_assert_eq!(parse_lifespan(&padded, u64::MAX), Err(LifespanError::NotInFuture));
                }
            }

            /// Anything outside the grammar is refused as unparsable:
            /// signs, spaces, fractions, other or repeated units.
            #[test]
            fn text_outside_the_grammar_is_unparsable(text in "\\PC*") {
                let well_formed = text.find(|c: char| !c.is_ascii_digit()).is_some_and(|i| {
                    i > 0 && SUFFIXES.contains(&&text[i..])
                });
                prop_assume!(!well_formed);
                prop_assert_eq!(parse_lifespan(&text, u64::MAX), Err(LifespanError::Unparsable));
            }

            /// The compact form of any lifespan parses back to it, when it
            /// is one number and one unit.
            #[test]
            fn whole_hours_minutes_and_seconds_read_back(secs in 1u64..=1_000_000) {
                let ns = secs * 1_000_000_000;
                let text = compact(ns);
                if text.chars().filter(|c| c.is_ascii_alphabetic()).count() == 1 {
                    prop_assert_eq!(parse_lifespan(&text, u64::MAX), Ok(ns));
                }
            }
        }
    }
}
