//! The one check of recipient addresses and display names, applied where
//! identities are created, where mail is queued and on the request form, so
//! that nothing accepted at one of them is refused later by the courier.

pub use reclaim_wire::checks::check_address;
pub use reclaim_wire::mail::{MAX_NAME_CHARS, check_name, check_sender, fit_name};

#[cfg(test)]
mod tests {
    use super::*;

    const SENDERS: [&str; 6] = [
        "reclaim@example.com",
        "Reclaim <reclaim@example.com>",
        "\"Reclaim, Inc.\" <reclaim@example.com>",
        "Jörg <jörg@bücher.example>",
        "<reclaim@example.com>",
        "Reclaim<reclaim@example.com>",
    ];

    #[test]
    fn senders_are_an_address_or_a_name_and_an_address() {
        for good in SENDERS {
            assert!(check_sender(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Reclaim",
            "Reclaim <>",
            "Reclaim <reclaim@example.com",
            "Re<claim <reclaim@example.com>",
            "Reclaim\r\nBcc: x@y <reclaim@example.com>",
            "Reclaim <\"a b\"@example.com>",
            "a@example.com, b@example.com",
        ] {
            assert!(check_sender(bad).is_err(), "{bad:?}");
        }
    }

    /// The check stands in for the courier's parser where the courier is
    /// not built: what it accepts, lettre must take as it is.
    #[cfg(feature = "smtp")]
    #[test]
    fn what_the_checks_accept_the_courier_parses() {
        for sender in SENDERS {
            let parsed: Result<lettre::message::Mailbox, _> = sender.parse();
            assert!(parsed.is_ok(), "{sender}");
        }
        for address in [
            "ann@example.com",
            "a.b+tag@sub.example.co",
            "ann@localhost",
            "jörg@bücher.example",
            "x!#$%&'*+/=?^_`{|}~-@example.com",
        ] {
            assert!(check_address(address).is_ok(), "{address}");
            let parsed: Result<lettre::Address, _> = address.parse();
            assert!(parsed.is_ok(), "{address}");
        }
    }

    #[test]
    fn long_names_are_cut_and_control_characters_refused() {
        assert_eq!(fit_name("Ann"), "Ann");
        let cut = fit_name(&"x".repeat(10_000));
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with('…'));
        assert!(check_name("Ann\r\nBcc: x@y").is_err());
        assert!(check_name("Ann Example").is_ok());
    }
}
