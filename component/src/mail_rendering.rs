//! Mail content: templates rendered inside the component, so that every host
//! sends byte-for-byte the same mail.

use minijinja::{AutoEscape, Environment, Value};

/// A template set: subject, plain-text body, HTML body (minijinja sources).
#[derive(Clone, Debug)]
pub struct TemplateSet {
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

/// A rendered message's content.
#[derive(Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

/// Template names, as hosts see them in `mail-template` and `message.template`.
pub const RECOVERY_LINK: &str = "recovery-link";
pub const RECOVERY_CODE: &str = "recovery-code";
pub const RECOVERY_UNKNOWN: &str = "recovery-unknown";
pub const PASSWORD_CHANGED: &str = "password-changed";
pub const ADDRESS_CHANGED: &str = "address-changed";
pub const ACCOUNT_RECOVERED: &str = "account-recovered";

macro_rules! builtin {
    ($lang:literal, $name:literal) => {
        (
            $lang,
            $name,
            include_str!(concat!("../templates/", $lang, "/", $name, ".subject")),
            include_str!(concat!("../templates/", $lang, "/", $name, ".txt")),
            include_str!(concat!("../templates/", $lang, "/", $name, ".html")),
        )
    };
}

/// The templates that ship inside the component: (language, name, subject,
/// text, html). English is the fallback for every other language.
const BUILTIN: [(&str, &str, &str, &str, &str); 12] = [
    builtin!("en", "recovery-link"),
    builtin!("en", "recovery-code"),
    builtin!("en", "recovery-unknown"),
    builtin!("en", "password-changed"),
    builtin!("en", "address-changed"),
    builtin!("en", "account-recovered"),
    builtin!("de", "recovery-link"),
    builtin!("de", "recovery-code"),
    builtin!("de", "recovery-unknown"),
    builtin!("de", "password-changed"),
    builtin!("de", "address-changed"),
    builtin!("de", "account-recovered"),
];

/// Where to look for a template, most specific first: `pt-BR`, `pt`, then the
/// default language (the empty string).
pub fn locale_candidates(locale: Option<&str>) -> Vec<String> {
    let mut out = Vec::with_capacity(3);
    if let Some(tag) = locale.map(str::trim).filter(|t| !t.is_empty()) {
        let tag = tag.replace('_', "-");
        let language = tag
            .split('-')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if tag.to_ascii_lowercase() != language {
            out.push(tag);
        }
        out.push(language);
    }
    out.push(String::new());
    out
}

/// The built-in template `name` for the first candidate locale that has one,
/// falling back to English.
pub fn builtin(name: &str, candidates: &[String]) -> Option<TemplateSet> {
    let find = |lang: &str| {
        BUILTIN
            .iter()
            .find(|(l, n, ..)| *l == lang && *n == name)
            .map(|(_, _, subject, text, html)| TemplateSet {
                subject: subject.to_string(),
                text_body: text.to_string(),
                html_body: html.to_string(),
            })
    };
    candidates
        .iter()
        .filter(|c| !c.is_empty())
        .find_map(|c| find(&c.to_ascii_lowercase()))
        .or_else(|| find("en"))
}

/// Renders a template set with `context`. The HTML body escapes every value;
/// the subject is folded onto one line with control characters removed, so
/// that no value can inject a mail header.
pub fn render(set: &TemplateSet, context: &Value) -> Result<Rendered, String> {
    let mut env = Environment::new();
    // Under the fuzzer a looping template must end; in a host, the epoch
    // deadline ends it (and fuel would cost every render).
    #[cfg(fuzzing)]
    env.set_fuel(Some(1_000_000));
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_template("subject.txt", &set.subject)
        .and_then(|()| env.add_template("body.txt", &set.text_body))
        .and_then(|()| env.add_template("body.html", &set.html_body))
        .map_err(|e| format!("mail template does not parse: {e}"))?;
    let render = |name: &str| {
        env.get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| format!("mail template {name} does not render: {e}"))
    };
    let subject = one_line(&render("subject.txt")?);
    if subject.is_empty() {
        return Err("mail template subject.txt renders an empty subject".to_string());
    }
    Ok(Rendered {
        subject,
        text_body: render("body.txt")?,
        html_body: render("body.html")?,
    })
}

/// Folds whitespace and drops control characters (CR and LF among them).
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn candidates(tag: &str) -> Vec<String> {
        locale_candidates(Some(tag))
    }

    #[test]
    fn locales_fall_back_from_region_to_language_to_default() {
        assert_eq!(candidates("pt_BR"), vec!["pt-BR", "pt", ""]);
        assert_eq!(candidates("de"), vec!["de", ""]);
        assert_eq!(locale_candidates(None), vec![""]);
    }

    #[test]
    fn german_identities_get_german_builtins_and_others_english() {
        let de = builtin(RECOVERY_LINK, &candidates("de-CH")).unwrap();
        assert!(de.subject.contains("wiederherstellen"));
        let fr = builtin(RECOVERY_LINK, &candidates("fr")).unwrap();
        assert!(fr.subject.starts_with("Recover"));
        assert!(builtin("no-such-template", &candidates("en")).is_none());
    }

    #[test]
    fn html_escapes_values_and_text_keeps_them() {
        let set = builtin(RECOVERY_LINK, &candidates("en")).unwrap();
        let ctx = context! { name => "<b>Eve</b>", email => "e@x", link => "https://x/?a=1&b=2", expires_in => "1 hour" };
        let mail = render(&set, &ctx).unwrap();
        assert!(
            mail.html_body.contains("&lt;b&gt;Eve&lt;&#x2f;b&gt;")
                || mail.html_body.contains("&lt;b&gt;Eve")
        );
        assert!(!mail.html_body.contains("<b>Eve"));
        assert!(mail.text_body.contains("<b>Eve</b>"));
        assert!(mail.text_body.contains("https://x/?a=1&b=2"));
    }

    #[test]
    fn subjects_cannot_carry_line_breaks() {
        let set = TemplateSet {
            subject: "Hello {{ name }}".into(),
            text_body: String::new(),
            html_body: String::new(),
        };
        let mail = render(&set, &context! { name => "Eve\r\nBcc: all@x" }).unwrap();
        assert_eq!(mail.subject, "Hello Eve Bcc: all@x");
    }

    #[test]
    fn broken_templates_are_reported() {
        let set = TemplateSet {
            subject: "{% if %}".into(),
            text_body: String::new(),
            html_body: String::new(),
        };
        assert!(
            render(&set, &context! {})
                .unwrap_err()
                .contains("does not parse")
        );
    }
}
