use super::*;

/// The test vector the specification publishes.
#[test]
fn signatures_match_the_specifications_test_vector() {
    let endpoint = Endpoint::new(
        "https://example.com/hook",
        &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()],
        None,
        false,
    )
    .unwrap();
    assert_eq!(
        endpoint.signature(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[test]
fn every_secret_signs_newest_first() {
    let endpoint = Endpoint::new(
        "https://example.com/hook",
        &[
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
            format!("whsec_{}", BASE64.encode([7u8; 32])),
        ],
        None,
        false,
    )
    .unwrap();
    let signature = endpoint.signature("msg_1", 1, "{}");
    let parts: Vec<_> = signature.split(' ').collect();
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.starts_with("v1,") && p.len() > 40));
    assert!(!format!("{endpoint:?}").contains("C2FV"));
}

#[test]
fn endpoints_must_be_https_unless_loopback_and_carry_a_secret() {
    let secret = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_string()];
    assert!(Endpoint::new("http://127.0.0.1:9/h", &secret, None, false).is_ok());
    assert!(Endpoint::new("http://localhost:9/h", &secret, None, false).is_ok());
    assert!(Endpoint::new("http://[::1]:9/h", &secret, None, false).is_ok());
    assert!(Endpoint::new("http://platform.example.com/h", &secret, None, false).is_err());
    assert!(Endpoint::new("https://u:p@platform.example.com/h", &secret, None, false).is_err());
    assert!(Endpoint::new("https://platform.example.com/h", &[], None, false).is_err());
    assert!(
        Endpoint::new(
            "https://platform.example.com/h",
            &["plain".into()],
            None,
            false
        )
        .is_err()
    );
    let unknown = Some(&["recovery.nothing".to_string()][..]);
    assert!(Endpoint::new("https://platform.example.com/h", &secret, unknown, false).is_err());
}

#[test]
fn retries_follow_the_schedule_then_stop() {
    let delay = |attempts, jitter, after| retry_delay(&SCHEDULE, attempts, jitter, after);
    assert_eq!(delay(1, 0.5, None), Some(Duration::from_secs(5)));
    assert_eq!(delay(2, 0.5, None), Some(Duration::from_secs(300)));
    assert_eq!(delay(9, 0.5, None), Some(Duration::from_secs(86_400)));
    assert_eq!(delay(10, 0.5, None), None);
    assert_eq!(delay(0, 0.5, None), None);
    let low = delay(3, 0.0, None).unwrap();
    let high = delay(3, 0.999, None).unwrap();
    assert!(low >= Duration::from_secs(1620) && high <= Duration::from_secs(1980));
    assert_eq!(
        delay(1, 0.5, Some(Duration::from_secs(60))),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        delay(1, 0.5, Some(Duration::from_secs(10 * 86_400))),
        Some(Duration::from_secs(86_400))
    );
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
    assert_eq!(
        parse_retry_after(&later, now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(parse_retry_after("soon", now), None);
}
