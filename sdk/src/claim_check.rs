//! Claim-check: payloads too large for a Pub/Sub message live in the payload bucket.
//!
//! Objects are named by content: `{account_id}/{yyyy}/{mm}/{dd}/{event_id}/{sha256}.json` (date
//! from `occurred_at`, sha256 of the bytes), written create-only (`if_generation_match = 0`), so
//! an object is never overwritten and a name always means the same bytes. A retry of an upload
//! whose first attempt landed (a publish that timed out, say) gets 412 and knows from the name
//! alone that the object holds its bytes: it succeeds with a create-only (`objectCreator`)
//! account that may not read the bucket. A replay that offloads a payload the database handed
//! back reformatted (MySQL 8 normalizes JSON) writes a sibling object instead of tripping over
//! the original. The bucket deletes objects after 30 days, which is why the worker stores the
//! full payload in the event store.

use crate::config::Config;
use crate::envelope::{ClaimCheckRef, Event, Payload};
use crate::error::{Error, InvalidClaimCheck, Poison, Result, Service};
use bytes::Bytes;
use google_cloud_storage::client::Storage;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Reads and writes claim-check objects in the payload bucket.
#[derive(Clone, Debug)]
pub struct ClaimCheck {
    storage: Storage,
    bucket: String,
    bucket_path: String,
    max_payload: usize,
}

/// `{account_id}/{yyyy}/{mm}/{dd}/{event_id}` (date from `occurred_at`): where an event's
/// objects live.
fn event_path(event: &Event) -> String {
    let at = event.occurred_at();
    format!(
        "{}/{:04}/{:02}/{:02}/{}",
        event.account_id(),
        at.year(),
        u8::from(at.month()),
        at.day(),
        event.event_id()
    )
}

/// The object name of an event's payload whose bytes have `sha256` (lowercase hex):
/// `{account_id}/{yyyy}/{mm}/{dd}/{event_id}/{sha256}.json`.
pub fn object_name(event: &Event, sha256: &str) -> String {
    format!("{}/{sha256}.json", event_path(event))
}

/// Whether `r` names an object of `event`'s own: [`object_name`] for its sha256, or the name
/// SDK 0.1 wrote, `{account_id}/{yyyy}/{mm}/{dd}/{event_id}.json`. Size and sha256 tie the
/// bytes to the reference; only the name ties the object to its event, so a reference to any
/// other object — another tenant's, another event's — is refused: a forged raw message must
/// not pull someone else's payload into its own event.
pub fn names_own_object(event: &Event, r: &ClaimCheckRef) -> bool {
    let path = event_path(event);
    r.object == format!("{path}/{}.json", r.sha256) || r.object == format!("{path}.json")
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ClaimCheck {
    /// Uses `storage` for the bucket named in `config`.
    pub fn new(storage: Storage, config: &Config) -> ClaimCheck {
        ClaimCheck {
            storage,
            bucket: config.names().payload_bucket.clone(),
            bucket_path: config.bucket_path(),
            max_payload: config.max_payload(),
        }
    }

    /// Connects a storage client for `config`.
    pub async fn connect(config: &Config) -> Result<ClaimCheck> {
        Ok(ClaimCheck::new(crate::clients::storage(config).await?, config))
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Uploads `payload` (the payload's JSON) for `event`, create-only, and returns the reference
    /// that replaces the inline payload. An object already there under the same name holds the
    /// same bytes (the name carries their sha256): the upload is then done, without reading it.
    pub async fn offload(&self, event: &Event, payload: Bytes) -> Result<ClaimCheckRef> {
        let sha256 = sha256_hex(&payload);
        let object = object_name(event, &sha256);
        let size = payload.len() as u64;
        let written = self
            .storage
            .write_object(&self.bucket_path, &object, payload)
            .set_if_generation_match(0)
            .set_content_type("application/json")
            .set_metadata([("sha256", sha256.as_str()), ("event_id", &event.event_id().to_string())])
            .send_buffered()
            .await;
        let generation = match written {
            Ok(obj) => obj.generation,
            // An earlier attempt of this same upload landed: the name proves the bytes.
            Err(e) if e.http_status_code() == Some(412) => 0,
            Err(e) => {
                return Err(Error::google(
                    Service::Storage,
                    format!("uploading gs://{}/{object}", self.bucket),
                    e,
                ));
            }
        };
        Ok(ClaimCheckRef { bucket: self.bucket.clone(), object, generation, sha256, size })
    }

    /// The reference to the object that holds `event`'s payload of `size` bytes with SHA-256
    /// `sha256`, when the bucket still has it; `None` when it is gone (expired after 30 days,
    /// deleted, never written). The object's name carries the sha256 of its bytes and objects
    /// are written create-only, so the name proves the content (a reader verifies both when it
    /// fetches). Reads one byte, not the payload.
    pub async fn find(&self, event: &Event, sha256: &str, size: u64) -> Result<Option<ClaimCheckRef>> {
        let object = object_name(event, sha256);
        let found = self
            .storage
            .read_object(&self.bucket_path, &object)
            .set_read_range(google_cloud_storage::model_ext::ReadRange::head(1))
            .send()
            .await;
        match found {
            Ok(response) => Ok(Some(ClaimCheckRef {
                bucket: self.bucket.clone(),
                generation: response.object().generation,
                object,
                sha256: sha256.to_string(),
                size,
            })),
            Err(e) if e.http_status_code() == Some(404) => Ok(None),
            Err(e) => {
                Err(Error::google(Service::Storage, format!("looking up gs://{}/{object}", self.bucket), e))
            }
        }
    }

    /// Downloads the payload a reference points to and verifies its size and sha256.
    /// A reference outside the configured bucket, a size above the configured maximum payload
    /// (refused before anything is downloaded), a missing object or a mismatch is
    /// [`Error::ClaimCheckInvalid`]; anything else is a (usually transient) service error.
    pub async fn fetch(&self, r: &ClaimCheckRef) -> Result<Bytes> {
        self.fetch_verified(r).await.map(Bytes::from)
    }

    async fn fetch_verified(&self, r: &ClaimCheckRef) -> Result<Vec<u8>> {
        let invalid = |problem: String| {
            Error::ClaimCheckInvalid(InvalidClaimCheck {
                bucket: r.bucket.clone(),
                object: r.object.clone(),
                problem,
            })
        };
        if r.bucket != self.bucket {
            return Err(invalid(format!("is not in the configured payload bucket {}", self.bucket)));
        }
        if r.size > self.max_payload as u64 {
            return Err(invalid(format!(
                "is {} bytes by its reference; the limit is {} (SUITEX_EVENTS_MAX_PAYLOAD)",
                r.size, self.max_payload
            )));
        }
        let bytes = self.read(&r.object, Some(r.size)).await?;
        if bytes.len() as u64 != r.size {
            return Err(invalid(format!("holds {} bytes but the reference says {}", bytes.len(), r.size)));
        }
        let sha = sha256_hex(&bytes);
        if sha != r.sha256 {
            return Err(invalid(format!("has sha256 {sha} but the reference says {}", r.sha256)));
        }
        Ok(bytes)
    }

    /// The event with its claim-checked payload inline (downloaded, size and sha256 verified),
    /// or why the message is poison (the object is missing, tampered, too large, not JSON, or a
    /// payload the ledger would store altered). The payload comes back as [`Payload::Raw`]: the
    /// verified bytes themselves, checked to be JSON the ledger stores exactly but not parsed
    /// into a tree, so a large payload costs little more than its size. An event whose payload is
    /// already inline comes back as it is.
    ///
    /// `Err` is a failure worth retrying: Cloud Storage unavailable, or the download took longer
    /// than `deadline` ([`Error::DeadlineExceeded`]; the storage client alone would retry for up
    /// to five minutes).
    pub async fn resolve(
        &self,
        event: Event,
        deadline: Duration,
    ) -> Result<std::result::Result<Event, Poison>> {
        let Payload::ClaimCheck(reference) = event.payload() else { return Ok(Ok(event)) };
        if !names_own_object(&event, reference) {
            return Ok(Err(Poison::ClaimCheck(InvalidClaimCheck {
                bucket: reference.bucket.clone(),
                object: reference.object.clone(),
                problem: format!(
                    "is not this event's object (expected {}/…/{}/<sha256>.json)",
                    event.account_id(),
                    event.event_id()
                ),
            })));
        }
        let fetched =
            tokio::time::timeout(deadline, self.fetch_verified(reference)).await.unwrap_or_else(|_| {
                Err(Error::DeadlineExceeded {
                    service: Service::Storage,
                    operation: format!("downloading gs://{}/{}", reference.bucket, reference.object),
                    deadline,
                })
            });
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(Error::ClaimCheckInvalid(invalid)) => return Ok(Err(Poison::ClaimCheck(invalid))),
            Err(e) => return Err(e),
        };
        let not_json = |error: String| Poison::PayloadNotJson { object: reference.object.clone(), error };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return Ok(Err(not_json(e.to_string()))),
        };
        let raw = match serde_json::value::RawValue::from_string(text) {
            Ok(raw) => raw,
            Err(e) => return Ok(Err(not_json(e.to_string()))),
        };
        if let Err(error) = crate::envelope::exact::check_payload_json(raw.get()) {
            return Ok(Err(Poison::PayloadNotExact { object: reference.object.clone(), error }));
        }
        Ok(Ok(event.with_payload(Payload::Raw(raw))))
    }

    /// Reads a whole object. With `expected`, stops as soon as more than that many bytes arrive
    /// (a tampered object must not exhaust memory).
    async fn read(&self, object: &str, expected: Option<u64>) -> Result<Vec<u8>> {
        let op = || format!("downloading gs://{}/{object}", self.bucket);
        let classify = |e: google_cloud_storage::Error| {
            if e.http_status_code() == Some(404) {
                Error::ClaimCheckInvalid(InvalidClaimCheck {
                    bucket: self.bucket.clone(),
                    object: object.to_string(),
                    problem: "does not exist (deleted, expired after 30 days, or never written)".into(),
                })
            } else {
                Error::google(Service::Storage, op(), e)
            }
        };
        let mut resp = self.storage.read_object(&self.bucket_path, object).send().await.map_err(classify)?;
        let mut buf = Vec::with_capacity(expected.unwrap_or(0).min(64 << 20) as usize);
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(classify)?;
            buf.extend_from_slice(&chunk);
            if let Some(limit) = expected
                && buf.len() as u64 > limit
            {
                break;
            }
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_only_its_own_events_object() {
        let event = |account: u64| {
            Event::builder()
                .account_id(account)
                .aggregate("customer", "C-1")
                .event_type("customer.snapshot")
                .payload(serde_json::json!({"a": 1}))
                .build()
                .unwrap()
        };
        let (own, other_tenant) = (event(7), event(8));
        let sha = sha256_hex(b"{\"a\":1}");
        let reference = |object: String| ClaimCheckRef {
            bucket: "suitex-payload-snapshots".into(),
            object,
            generation: 1,
            size: 7,
            sha256: sha.clone(),
        };
        assert!(names_own_object(&own, &reference(object_name(&own, &sha))));
        let at = own.occurred_at();
        let v01 =
            format!("7/{:04}/{:02}/{:02}/{}.json", at.year(), u8::from(at.month()), at.day(), own.event_id());
        assert!(names_own_object(&own, &reference(v01)), "objects written by SDK 0.1 stay readable");
        // Another tenant's object, another event's, another sha's, or outside the prefix.
        assert!(!names_own_object(&own, &reference(object_name(&other_tenant, &sha))));
        assert!(!names_own_object(&own, &reference(object_name(&own, &sha256_hex(b"other")))));
        assert!(!names_own_object(&own, &reference(format!("../{}", object_name(&own, &sha)))));
        assert!(!names_own_object(&own, &reference("7/anything.json".into())));
    }
}
