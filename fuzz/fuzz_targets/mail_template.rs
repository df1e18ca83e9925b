//! Template overrides: any subject, text and HTML source either fails with
//! a message or renders; a rendered subject is one line with no control
//! characters (no header injection), whatever the values hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minijinja::Value;
use reclaim_component::fuzzing::{TemplateSet, render};

fuzz_target!(|input: (String, String, String, String)| {
    let (subject, text_body, html_body, name) = input;
    let set = TemplateSet {
        subject,
        text_body,
        html_body,
    };
    let context = Value::from_serialize(
        &[
            (
                "link",
                "https://id.example/self-service/recovery?flow=f&token=t",
            ),
            ("name", name.as_str()),
            ("email", "ann@example.com"),
            ("expires_in", "1 hour"),
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>(),
    );
    if let Ok(rendered) = render(&set, &context) {
        assert!(!rendered.subject.is_empty());
        assert!(
            !rendered.subject.chars().any(char::is_control),
            "{:?}",
            rendered.subject
        );
    }
});
