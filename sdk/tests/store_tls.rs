//! TLS to the event store fails closed, against a MariaDB of the test's own that serves TLS with
//! a certificate for 127.0.0.1 signed by a test CA: a CA means verify_ca, the wrong CA is
//! refused, and a verified connection really is encrypted.

use suitex_events::store::{EventStore, SslMode, StoreSettings};
use suitex_test_support::*;

fn settings(port: u16, extra: &[(&str, String)]) -> StoreSettings {
    let port = port.to_string();
    StoreSettings::from_lookup(|k| match k {
        "DB_EVENT_STORE_HOST" => Some("127.0.0.1".into()),
        "DB_EVENT_STORE_PORT" => Some(port.clone()),
        "DB_EVENT_STORE_USERNAME" => Some("root".into()),
        _ => extra.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()),
    })
    .unwrap()
}

async fn cipher(store: &EventStore) -> Result<String, String> {
    let row: (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .fetch_one(store.pool())
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.1)
}

#[tokio::test]
async fn a_ca_means_verify_ca_and_the_wrong_authority_is_refused() {
    let certs_dir = std::env::temp_dir().join(format!("suitex-certs-{}", unique()));
    std::fs::create_dir_all(&certs_dir).unwrap();
    let certs = TestCerts::generate(&certs_dir);
    let db = PrivateMariaDb::start_with_tls(&certs);
    let ca = |path: &std::path::Path| ("DB_EVENT_STORE_SSL_CA", path.display().to_string());

    // A CA and no mode: verify_ca, and the session is encrypted.
    let verified = settings(db.port(), &[ca(&certs.ca)]);
    assert_eq!(verified.ssl_mode, SslMode::VerifyCa);
    let store = EventStore::connect(&verified).await.unwrap();
    let used = cipher(&store).await.expect("connects, verifying the server against the CA");
    assert!(!used.is_empty(), "the session uses TLS");
    store.ping().await.unwrap();

    // The same server checked against another authority: refused, nothing sent in the clear.
    let wrong = settings(db.port(), &[ca(&certs.other_ca)]);
    let store = EventStore::connect(&wrong).await.unwrap();
    let refused = cipher(&store).await.expect_err("a server the CA did not sign is refused");
    assert!(refused.to_lowercase().contains("certificate") || refused.contains("UnknownIssuer"), "{refused}");

    // verify_identity: the certificate names 127.0.0.1.
    let identity =
        settings(db.port(), &[ca(&certs.ca), ("DB_EVENT_STORE_SSL_MODE", "verify_identity".into())]);
    assert!(!cipher(&EventStore::connect(&identity).await.unwrap()).await.unwrap().is_empty());

    // required: encrypted without a CA.
    let required = settings(db.port(), &[("DB_EVENT_STORE_SSL_MODE", "required".into())]);
    assert!(!cipher(&EventStore::connect(&required).await.unwrap()).await.unwrap().is_empty());
    std::fs::remove_dir_all(&certs_dir).unwrap();
}
