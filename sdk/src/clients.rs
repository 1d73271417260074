//! Construction of the official Google clients from a [`Config`].
//!
//! The official clients read no emulator variables, so this is the one place that turns an
//! [`Endpoint::Emulator`] into a plain-text endpoint with anonymous credentials (without them,
//! the default-credential lookup can stall for minutes on a machine outside GCP), and the one
//! place that chooses endpoints and credentials at all.

use crate::config::{Config, Endpoint};
use crate::error::{Error, Result, Service};
use google_cloud_auth::credentials::{Credentials, anonymous};
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_pubsub::client::BasePublisher;
#[cfg(feature = "consume")]
use google_cloud_pubsub::client::SubscriptionAdmin;
#[cfg(feature = "worker")]
use google_cloud_pubsub::client::{Subscriber, TopicAdmin};
use google_cloud_storage::client::Storage;
use std::time::Duration;

fn emulator(endpoint: &Endpoint) -> Option<(&str, Credentials)> {
    match endpoint {
        Endpoint::Google => None,
        Endpoint::Emulator(url) => Some((url.as_str(), anonymous::Builder::new().build())),
    }
}

fn build_error(service: Service, what: &str, e: impl Into<crate::error::BoxError>) -> Error {
    Error::service(service, format!("creating the {what} client"), false, e)
}

/// A publisher connection; topic publishers are made from it with
/// [`BasePublisher::publisher`]. Retries stop after `retry_limit` so that a publish whose
/// caller gave up does not keep retrying for the client's default ten minutes.
pub async fn base_publisher(config: &Config, retry_limit: Duration) -> Result<BasePublisher> {
    let mut b = BasePublisher::builder()
        .with_retry_policy(google_cloud_pubsub::retry_policy::RetryableErrors.with_time_limit(retry_limit));
    if let Some((url, creds)) = emulator(config.pubsub_endpoint()) {
        b = b.with_endpoint(url).with_credentials(creds);
    }
    b.build().await.map_err(|e| build_error(Service::PubSub, "publisher", e))
}

/// A StreamingPull subscriber.
#[cfg(feature = "worker")]
pub async fn subscriber(config: &Config) -> Result<Subscriber> {
    let mut b = Subscriber::builder();
    if let Some((url, creds)) = emulator(config.pubsub_endpoint()) {
        b = b.with_endpoint(url).with_credentials(creds);
    }
    b.build().await.map_err(|e| build_error(Service::PubSub, "subscriber", e))
}

/// The topic administration client (REST).
#[cfg(feature = "worker")]
pub async fn topic_admin(config: &Config) -> Result<TopicAdmin> {
    let mut b = TopicAdmin::builder();
    if let Some((url, creds)) = emulator(config.pubsub_endpoint()) {
        b = b.with_endpoint(url).with_credentials(creds);
    }
    b.build().await.map_err(|e| build_error(Service::PubSub, "topic admin", e))
}

/// The subscription administration client (REST).
#[cfg(feature = "consume")]
pub async fn subscription_admin(config: &Config) -> Result<SubscriptionAdmin> {
    let mut b = SubscriptionAdmin::builder();
    if let Some((url, creds)) = emulator(config.pubsub_endpoint()) {
        b = b.with_endpoint(url).with_credentials(creds);
    }
    b.build().await.map_err(|e| build_error(Service::PubSub, "subscription admin", e))
}

/// The Cloud Storage client. Uploads are always single-shot (`send_buffered`): the resumable
/// threshold sits above the largest payload the SDK accepts, which also keeps the create-only
/// precondition effective on emulators that ignore it for resumable uploads.
pub async fn storage(config: &Config) -> Result<Storage> {
    let mut b = Storage::builder().with_resumable_upload_threshold(config.max_payload() + 1);
    if let Some((url, creds)) = emulator(config.storage_endpoint()) {
        b = b.with_endpoint(url).with_credentials(creds);
    }
    b.build().await.map_err(|e| build_error(Service::Storage, "storage", e))
}

/// A gRPC channel to `config`'s Pub/Sub endpoint for the unary subscriber stubs, with the
/// credentials each request must carry (`None` on the emulator: plain text, anonymous).
#[cfg(feature = "consume")]
pub fn subscriber_channel(config: &Config) -> Result<(tonic::transport::Channel, Option<Credentials>)> {
    let fail = |what: String, e: crate::error::BoxError| Error::service(Service::PubSub, what, false, e);
    let (url, credentials) = match emulator(config.pubsub_endpoint()) {
        Some((url, _anonymous)) => (url.to_string(), None),
        None => {
            let creds = google_cloud_auth::credentials::Builder::default()
                .with_scopes(["https://www.googleapis.com/auth/pubsub"])
                .build()
                .map_err(|e| fail("loading Application Default Credentials".into(), e.into()))?;
            ("https://pubsub.googleapis.com".to_string(), Some(creds))
        }
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| fail(format!("parsing the Pub/Sub endpoint {url}"), e.into()))?
        .connect_timeout(Duration::from_secs(10));
    if credentials.is_some() {
        endpoint = endpoint
            .tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
            .map_err(|e| fail("configuring TLS for Pub/Sub".into(), e.into()))?;
    }
    Ok((endpoint.connect_lazy(), credentials))
}

/// Closes a subscriber stream cleanly: runs `release` (acking or dropping the handlers still
/// held), lets the subscriber send those acknowledgements while the stream is still open (the
/// emulator ignores acknowledgements for a stream that has closed), then shuts the stream down,
/// waiting at most `limit`.
#[cfg(feature = "worker")]
pub async fn close_stream(
    stream: google_cloud_pubsub::subscriber::MessageStream,
    release: impl FnOnce(),
    limit: Duration,
) {
    release();
    // The subscriber sends acknowledgements every 100 ms.
    tokio::time::sleep(Duration::from_millis(300).min(limit)).await;
    let _ = tokio::time::timeout(limit, stream.shutdown_token().shutdown()).await;
}
