//! The form a flow shows in each state, as Kratos' `ui.nodes`: the one
//! list both faces draw (the JSON flow and the HTML page that renders it).

use serde::{Deserialize, Serialize};

use super::texts::{self, Text};

/// One node (Kratos' `uiNode`); every node here is an input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(rename = "type")]
    pub kind: String,
    pub group: String,
    pub attributes: Attributes,
    pub messages: Vec<Text>,
    pub meta: Meta,
}

/// `uiNodeInputAttributes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub required: bool,
    pub disabled: bool,
    pub node_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autocomplete: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxlength: Option<u32>,
}

/// `uiNodeMeta`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Text>,
}

fn input(group: &str, name: &str, kind: &str, value: Option<&str>, label: Option<u32>) -> Node {
    Node {
        kind: "input".into(),
        group: group.into(),
        attributes: Attributes {
            name: name.into(),
            kind: kind.into(),
            value: value.map(str::to_string),
            required: false,
            disabled: false,
            node_type: "input".into(),
            autocomplete: None,
            pattern: None,
            maxlength: None,
        },
        messages: Vec::new(),
        meta: Meta {
            label: label.map(texts::label),
        },
    }
}

fn required(mut node: Node) -> Node {
    node.attributes.required = true;
    node
}

/// The hidden CSRF token (browser flows carry one; API flows an empty one,
/// as Kratos' do).
pub fn csrf(token: &str) -> Node {
    required(input("default", "csrf_token", "hidden", Some(token), None))
}

/// A fresh recovery flow of `method` (`code` or `link`): the address and
/// the button.
pub fn choose(method: &str, email: Option<&str>) -> Vec<Node> {
    let mut address = required(input(method, "email", "email", email, Some(1070007)));
    address.attributes.autocomplete = Some("email".into());
    vec![
        address,
        input(method, "method", "submit", Some(method), Some(1070009)),
    ]
}

/// A code flow once the code is on its way: the code, the button, and the
/// address again as the re-send button.
pub fn enter_code(email: &str) -> Vec<Node> {
    let mut code = required(input("code", "code", "text", None, Some(1070010)));
    code.attributes.autocomplete = Some("one-time-code".into());
    code.attributes.pattern = Some("[0-9]+".into());
    code.attributes.maxlength = Some(6);
    vec![
        code,
        input("code", "method", "hidden", Some("code"), None),
        input("code", "method", "submit", Some("code"), Some(1070009)),
        input("code", "email", "submit", Some(email), Some(1070008)),
    ]
}

/// The new-password form of a settings flow.
pub fn new_password() -> Vec<Node> {
    let mut password = required(input(
        "password",
        "password",
        "password",
        None,
        Some(1070001),
    ));
    password.attributes.autocomplete = Some("new-password".into());
    vec![
        password,
        input(
            "password",
            "method",
            "submit",
            Some("password"),
            Some(1070003),
        ),
    ]
}
