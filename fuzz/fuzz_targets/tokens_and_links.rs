//! Tokens and links: whatever the random bytes, a drawn token is token-shaped,
//! and a link built on a usable base parses as a URL under that base whose
//! query gives back exactly the flow and the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reclaim_component::fuzzing::{
    draw_flow_id, draw_token, flow_link, is_code_shaped, is_token_shaped, is_usable_base,
    token_link,
};

fuzz_target!(|input: (&str, &str, Vec<u8>)| {
    let (base, candidate, bytes) = input;
    // Shape checks never panic, and agree with their definitions.
    assert_eq!(
        is_code_shaped(candidate),
        candidate.len() == 6 && candidate.bytes().all(|b| b.is_ascii_digit())
    );
    let _ = is_token_shaped(candidate);

    let mut source = bytes.iter().copied().cycle();
    let mut fill = |buffer: &mut [u8]| {
        for b in buffer.iter_mut() {
            *b = source.next().unwrap_or(0);
        }
    };
    let token = draw_token(&mut fill);
    assert!(is_token_shaped(&token), "{token:?}");
    let flow = draw_flow_id(&mut fill);

    if !is_usable_base(base) {
        return;
    }
    let link = token_link(base, &flow, &token);
    let parsed = url::Url::parse(&link).unwrap_or_else(|e| panic!("{link:?}: {e}"));
    let base_url = url::Url::parse(base).unwrap_or_else(|e| panic!("usable {base:?}: {e}"));
    assert_eq!(parsed.origin(), base_url.origin(), "{link:?}");
    let query: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        vec![
            ("flow".to_string(), flow.clone()),
            ("token".to_string(), token)
        ],
        "{link:?}"
    );
    let code_page = url::Url::parse(&flow_link(base, &flow)).unwrap();
    assert_eq!(code_page.query(), Some(format!("flow={flow}").as_str()));
});
