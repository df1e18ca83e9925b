use super::*;

#[test]
fn flags_override_the_file_and_defaults_fill_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reclaim.toml");
    std::fs::write(
        &file,
        format!(
            "data = {:?}\npublic_url = \"https://file.example\"\nlifespan = \"2h\"\n\
             allowed_return_urls = [\"https://app.example/done\"]\n\
             [email_stages.welcome]\nsubject = \"Welcome\"\ntoken_expiry = \"1h\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let flags = Options {
        public_url: Some("https://flag.example".into()),
        ..Default::default()
    };
    let config = Config::resolve(Some(&file), flags).unwrap();
    assert_eq!(config.settings.public_url, "https://flag.example");
    assert_eq!(
        config.settings.default_lifespan,
        Some(Duration::from_secs(7200))
    );
    // Left to the component's default.
    assert_eq!(config.settings.max_code_attempts, None);
    assert!(config.email_stage("welcome").is_some() && config.email_stage("default").is_some());
    assert_eq!(
        config.allowed_return_to("https://app.example/done/here?x=1"),
        Some("https://app.example/done/here?x=1".into())
    );
    assert!(
        config
            .allowed_return_to("https://app.example/done")
            .is_some()
    );
    assert!(
        config
            .allowed_return_to("https://app.example/elsewhere")
            .is_none()
    );
    assert!(
        config
            .allowed_return_to("https://app.example.evil/done")
            .is_none()
    );
    assert!(
        config
            .allowed_return_to("https://user@app.example/done")
            .is_none()
    );
}

#[test]
fn return_to_paths_match_at_a_slash_and_are_stored_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        data: Some(dir.path().into()),
        allowed_return_urls: Some(vec!["https://App.Example:443/done".into()]),
        ..Default::default()
    };
    let config = Config::resolve(None, options).unwrap();
    assert!(
        config
            .allowed_return_to("https://app.example/donex")
            .is_none()
    );
    assert!(
        config
            .allowed_return_to("https://app.example/done/../admin")
            .is_none()
    );
    assert_eq!(
        config.allowed_return_to("HTTPS://APP.EXAMPLE:443/done/a%20b#top"),
        Some("https://app.example/done/a%20b#top".into())
    );
}

#[test]
fn unknown_keys_in_the_file_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reclaim.toml");
    std::fs::write(&file, "publc_url = \"x\"\n").unwrap();
    let err = Config::resolve(Some(&file), Options::default()).unwrap_err();
    assert!(format!("{err:#}").contains("publc_url"));
}

#[test]
fn a_shared_database_needs_configured_secrets_and_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let options = |secrets: bool, token: bool| Options {
        data: Some(dir.path().into()),
        database_url: Some("postgres://reclaim:hunter2@db.internal/reclaim".into()),
        secrets: secrets.then(|| vec!["a-shared-secret-of-at-least-32-bytes!!".into()]),
        admin_token: token.then(|| "an-admin-token".into()),
        ..Default::default()
    };
    let no_secrets = Config::resolve(None, options(false, true)).unwrap_err();
    assert!(format!("{no_secrets:#}").contains("hashing secrets"));
    assert!(
        !dir.path().join("secrets").exists(),
        "no per-replica secrets file"
    );
    let no_token = Config::resolve(None, options(true, false)).unwrap_err();
    assert!(format!("{no_token:#}").contains("admin token"));
    let config = Config::resolve(None, options(true, true)).unwrap();
    assert!(matches!(
        config.storage_location(),
        Location::Postgres { .. }
    ));
    let mysql = Options {
        database_url: Some("mysql://db/reclaim".into()),
        ..options(true, true)
    };
    let refused = format!("{:#}", Config::resolve(None, mysql).unwrap_err());
    assert!(refused.contains("postgres://") && !refused.contains("hunter2"));
}

#[test]
fn server_limits_default_and_refuse_a_zero_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        data: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let limits = Config::resolve(None, options()).unwrap().server;
    assert_eq!(limits.max_operations, 1024);
    assert_eq!(limits.max_connections, 4096);
    assert_eq!(limits.header_timeout, Duration::from_secs(10));
    assert_eq!(limits.request_timeout, Duration::from_secs(30));
    for zero in [
        Options {
            header_timeout: Some("0s".into()),
            ..options()
        },
        Options {
            request_timeout: Some("0ms".into()),
            ..options()
        },
    ] {
        let e = Config::resolve(None, zero).unwrap_err();
        assert!(format!("{e:#}").contains("more than zero"), "{e:#}");
    }
}

/// The README's `[[webhooks]]` example, exactly as written, is a valid
/// configuration.
#[test]
fn the_readmes_webhook_example_configures_one_endpoint() {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.starts_with("[[webhooks]]"))
        .expect("the README has a [[webhooks]] example");
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        data: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let config = Config::resolve_toml(block, options).unwrap();
    assert_eq!(config.webhooks.len(), 1);
    let endpoint = &config.webhooks[0];
    assert_eq!(
        endpoint.url.as_str(),
        "https://platform.example.com/hooks/reclaim"
    );
    assert_eq!(
        endpoint.events,
        Some(vec![crate::events::EventType::Completed])
    );
    assert!(!endpoint.include_password_hash);
    assert_eq!(
        config.webhook_retry,
        crate::events::webhooks::SCHEDULE.to_vec()
    );
}

#[test]
fn handoff_needs_a_handoff_url_and_webhooks_need_sound_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        data: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let refused = Config::resolve_toml("completion = \"handoff\"", options()).unwrap_err();
    assert!(format!("{refused:#}").contains("handoff_url"));
    let config = Config::resolve_toml(
        "completion = \"handoff\"\nhandoff_url = \"https://app.example/recovered\"",
        options(),
    )
    .unwrap();
    assert_eq!(config.completion, Completion::Handoff);
    assert_eq!(config.assertion_lifespan, Duration::from_secs(300));
    for bad in [
        "[[webhooks]]\nurl = \"http://platform.example/h\"\nsecrets = [\"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"]",
        "[[webhooks]]\nurl = \"https://platform.example/h\"\nsecrets = []",
        "[[webhooks]]\nurl = \"https://platform.example/h\"\nsecrets = [\"not-a-secret\"]",
    ] {
        let refused = Config::resolve_toml(bad, options()).unwrap_err();
        assert!(
            !format!("{refused:#}").contains("C2FV"),
            "no secret in the error"
        );
    }
}

#[test]
fn the_flow_apis_settings_have_kratos_defaults_and_refuse_what_would_match_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        data: Some(dir.path().to_path_buf()),
        public_url: Some("https://id.example".into()),
        ..Default::default()
    };
    let config = Config::resolve_toml("", options()).unwrap();
    assert_eq!(
        config.recovery_ui_url,
        "https://id.example/self-service/recovery"
    );
    assert_eq!(
        config.settings_ui_url,
        "https://id.example/self-service/recovery/password"
    );
    assert!(!config.use_continue_with_transitions, "off, as in Kratos");
    assert_eq!(config.flow_lifespan, Duration::from_secs(3600));
    assert!(config.cors_allowed_origins.is_empty());
    let config = Config::resolve_toml(
        "recovery_ui_url = \"https://app.example/recovery\"\nuse_continue_with_transitions = true\ncors_allowed_origins = [\"https://app.example\"]",
        options(),
    )
    .unwrap();
    assert_eq!(config.recovery_ui_url, "https://app.example/recovery");
    assert!(config.use_continue_with_transitions);
    assert_eq!(config.cors_allowed_origins, ["https://app.example"]);
    for bad in [
        "cors_allowed_origins = [\"https://app.example/spa\"]",
        "cors_allowed_origins = [\"app.example\"]",
        "recovery_ui_url = \"javascript:alert(1)\"",
        "flow_lifespan = \"0s\"",
    ] {
        assert!(Config::resolve_toml(bad, options()).is_err(), "{bad}");
    }
}
