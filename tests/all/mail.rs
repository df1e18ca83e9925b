//! Recovery mail: rendered in the component, queued in the operation's
//! transaction, delivered by the courier as real `.eml` files.

use std::sync::Arc;

use lettre::message::Mailbox;
use reclaim::mail::{Courier, DeliveryError, EmlDirectory, QueuedMail, RetryPolicy, Transport};
use reclaim::{EmailOptions, Error, ErrorKind, IdentityRef};
use reclaim_tests::{PUBLIC_URL, SECRET_A, TestEnv, by_id, decoded_eml, link_in, token_of};

/// Long enough that no test's message is deleted before it is read.
const RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn deliver(env: &TestEnv) -> Vec<String> {
    let outbox = env.dir.path().join("outbox");
    let from: Mailbox = "Reclaim <no-reply@reclaim.test>".parse().unwrap();
    let courier = Courier::new(
        env.storage.clone(),
        Box::new(EmlDirectory::new(&outbox, RETENTION).unwrap()),
        from,
        Arc::new(env.clock.clone()),
        RetryPolicy::default(),
    );
    courier.drain().unwrap();
    read_outbox(&outbox)
}

fn read_outbox(outbox: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn a_mailed_link_arrives_as_an_eml_file_and_redeems() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let mailed = reclaim
        .send_recovery_email(
            &by_id(&ann),
            &EmailOptions {
                expires_in: Some("30m"),
                ..Default::default()
            },
        )
        .wait()
        .unwrap();
    let mails = deliver(&env);
    assert_eq!(mails.len(), 1);
    let mail = decoded_eml(&mails[0]);
    assert!(
        mail.contains("To: \"Ann Example\" <ann@example.com>")
            || mail.contains("To: Ann Example <ann@example.com>"),
        "{mail}"
    );
    assert!(mail.contains("Subject: Recover access to your account"));
    assert!(mail.contains("Message-ID: <"));
    assert!(mail.contains("expires in 30 minutes"));
    let link = link_in(&mail, PUBLIC_URL).expect("the mail carries the link");
    assert!(link.contains(&format!("flow={}", mailed.flow_id)));
    assert_eq!(
        reclaim
            .redeem_link(&token_of(&link))
            .wait()
            .unwrap()
            .identity_id,
        ann.id
    );
    assert!(
        deliver(&env).len() == 1,
        "a delivered message is not delivered again"
    );
}

#[test]
fn a_german_identity_gets_german_mail() {
    let env = TestEnv::new();
    let bea = env.identity(Some("bea@example.com"), Some("de-AT"));
    env.reclaim()
        .send_recovery_email(
            &by_id(&bea),
            &EmailOptions {
                expires_in: Some("2h"),
                ..Default::default()
            },
        )
        .wait()
        .unwrap();
    let mail = decoded_eml(&deliver(&env)[0]);
    assert!(mail.contains("Hallo Ann Example"), "{mail}");
    assert!(mail.contains("läuft in 2 Stunden ab"));
}

#[test]
fn operator_templates_replace_the_builtin_ones_per_locale() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), Some("fr"));
    let dir = tempfile::tempdir().unwrap();
    let fr = dir.path().join("fr");
    std::fs::create_dir(&fr).unwrap();
    std::fs::write(
        fr.join("recovery-link.subject"),
        "Récupérez votre compte, {{ name }}",
    )
    .unwrap();
    std::fs::write(
        fr.join("recovery-link.txt"),
        "Lien : {{ link }} ({{ expires_in_minutes }} min)",
    )
    .unwrap();
    std::fs::write(
        fr.join("recovery-link.html"),
        "<a href=\"{{ link }}\">ici</a>",
    )
    .unwrap();
    let mut settings = env.settings(SECRET_A);
    settings.templates = reclaim::Templates::load(dir.path()).unwrap();
    env.reclaim_with(settings)
        .send_recovery_email(&by_id(&ann), &EmailOptions::default())
        .wait()
        .unwrap();
    let mail = decoded_eml(&deliver(&env)[0]);
    assert!(mail.contains("(60 min)"), "{mail}");
    assert!(
        mail.contains("Subject: =?utf-8?") || mail.contains("Récupérez"),
        "{mail}"
    );
}

#[test]
fn self_service_answers_alike_for_known_and_unknown_addresses() {
    let env = TestEnv::new();
    let ann = env.identity(Some("Ann@Example.com"), None);
    let reclaim = env.reclaim();
    assert!(
        reclaim
            .request_recovery("ann@example.com", None)
            .wait()
            .is_ok()
    );
    assert!(
        reclaim
            .request_recovery("nobody@example.com", None)
            .wait()
            .is_ok()
    );
    let mails = deliver(&env);
    assert_eq!(
        mails.len(),
        1,
        "only the known address gets mail by default"
    );
    let link = link_in(&decoded_eml(&mails[0]), PUBLIC_URL).unwrap();
    assert_eq!(
        reclaim
            .redeem_link(&token_of(&link))
            .wait()
            .unwrap()
            .identity_id,
        ann.id
    );
    match reclaim.request_recovery("not an address", None).wait() {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::InvalidArgument),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_addresses_are_told_only_when_the_operator_asks() {
    let env = TestEnv::new();
    let mut settings = env.settings(SECRET_A);
    settings.notify_unknown_recipients = Some(true);
    env.reclaim_with(settings)
        .request_recovery("nobody@example.com", None)
        .wait()
        .unwrap();
    let mail = decoded_eml(&deliver(&env)[0]);
    assert!(mail.contains("Subject: Account access attempted"));
    assert!(
        link_in(&mail, PUBLIC_URL).is_none(),
        "no link goes to an unknown address"
    );
    assert_eq!(env.count("SELECT count(*) FROM credentials"), 0);
}

#[test]
fn password_change_notices_are_mailed() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    env.reclaim()
        .notify_password_changed(&IdentityRef::Pk(ann.pk))
        .wait()
        .unwrap();
    let mail = decoded_eml(&deliver(&env)[0]);
    assert!(mail.contains("Subject: Your password was changed"));
}

#[test]
fn names_with_markup_or_line_breaks_are_escaped_or_folded() {
    let env = TestEnv::new();
    let eve = env.identity_with(reclaim::NewIdentity {
        email: Some("eve@example.com".into()),
        display_name: Some("<script>x</script>".into()),
        active: true,
        ..Default::default()
    });
    env.reclaim()
        .send_recovery_email(&by_id(&eve), &EmailOptions::default())
        .wait()
        .unwrap();
    let mail = decoded_eml(&deliver(&env)[0]);
    assert!(mail.contains("&lt;script&gt;"), "{mail}");
    assert!(!mail.contains("<p>Hi <script>"));

    let crlf = env.identity_with(reclaim::NewIdentity {
        email: Some("crlf@example.com".into()),
        display_name: Some("Mallory\r\nBcc: all@example.com".into()),
        active: true,
        ..Default::default()
    });
    match env
        .reclaim()
        .send_recovery_email(&by_id(&crlf), &EmailOptions::default())
        .wait()
    {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::MailRejected),
        other => panic!("a name with CR/LF must not reach a header: {other:?}"),
    }
}

#[test]
fn mail_queued_before_a_crash_is_delivered_by_the_next_process_once() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    // The process that queued the mail dies before its courier runs.
    {
        let storage = Arc::new(reclaim::backends::SqliteStorage::open(env.db_path()).unwrap());
        let reclaim = env.reclaim_on(storage, env.settings(SECRET_A));
        reclaim
            .send_recovery_email(&by_id(&ann), &EmailOptions::default())
            .wait()
            .unwrap();
    }
    assert_eq!(
        env.count("SELECT count(*) FROM outbox WHERE status = 'queued'"),
        1
    );
    // A crash between writing the file and recording it: the courier dies
    // right after its transport returns.
    let outbox = env.dir.path().join("outbox");
    let crashing = Courier::new(
        env.storage.clone(),
        Box::new(CrashAfterDelivery(
            EmlDirectory::new(&outbox, RETENTION).unwrap(),
        )),
        "Reclaim <no-reply@reclaim.test>".parse().unwrap(),
        Arc::new(env.clock.clone()),
        RetryPolicy::default(),
    );
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crashing.drain()));
    assert!(died.is_err());
    let first = read_outbox(&outbox);
    assert_eq!(
        env.count("SELECT count(*) FROM outbox WHERE status = 'processing'"),
        1
    );
    // Once the dead courier's lease has run out, the next one writes the
    // same message again, under the same name and Message-ID.
    env.clock
        .advance(RetryPolicy::default().lease + std::time::Duration::from_secs(1));
    let second = deliver(&env);
    assert_eq!(first.len(), 1);
    assert_eq!(
        second, first,
        "the redelivery is the same message, not a second one"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM outbox WHERE status = 'sent'"),
        1
    );
}

/// A transport after which the process "dies": the delivery happened, its
/// record never will.
struct CrashAfterDelivery(EmlDirectory);

impl Transport for CrashAfterDelivery {
    fn deliver(&self, mail: &QueuedMail, from: &Mailbox, eml: &[u8]) -> Result<(), DeliveryError> {
        self.0.deliver(mail, from, eml)?;
        panic!("the courier dies before recording the delivery");
    }
}

#[test]
fn a_mailed_code_redeems_for_its_flow_and_its_link_carries_no_code() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), Some("de"));
    let reclaim = env.reclaim();
    let mailed = reclaim
        .send_recovery_code(&by_id(&ann), Some("15m"))
        .wait()
        .unwrap();
    let mail = decoded_eml(&deliver(&env)[0]);
    assert!(
        mail.contains("Subject: Ihr Wiederherstellungscode"),
        "{mail}"
    );
    let link = link_in(&mail, PUBLIC_URL).unwrap();
    assert_eq!(
        link,
        format!(
            "https://id.example.test/self-service/recovery?flow={}",
            mailed.flow_id
        )
    );
    let code = mail
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .expect("the mail carries the code")
        .to_string();
    assert!(!link.contains(&code));
    assert_eq!(
        reclaim
            .redeem_code(&mailed.flow_id, &code)
            .wait()
            .unwrap()
            .identity_id,
        ann.id
    );
}

#[test]
fn a_delivered_link_leaves_no_usable_token_in_the_database_files() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    env.reclaim()
        .send_recovery_email(&by_id(&ann), &EmailOptions::default())
        .wait()
        .unwrap();
    let mail = decoded_eml(&deliver(&env)[0]);
    let token = token_of(&link_in(&mail, PUBLIC_URL).unwrap());
    let bytes = reclaim_tests::database_bytes(&env.db_path());
    assert!(
        !reclaim_tests::contains(&bytes, &token),
        "the delivered token is still in the database"
    );
    assert!(
        env.reclaim().redeem_link(&token).wait().is_ok(),
        "the link itself still works"
    );
}
