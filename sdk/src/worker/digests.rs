//! Digests of the ledger outside the database (docs/architecture.md §2.2, "Digests"): the
//! leading feeder writes `{digest, seq, row_hash, created_at}` to the bucket
//! `SUITEX_WORKER_DIGEST_BUCKET` (`suitex-ledger-digests`) every
//! `SUITEX_WORKER_DIGEST_EVERY` rows or `SUITEX_WORKER_DIGEST_INTERVAL`, whichever comes first.
//! The bucket has a locked retention policy and the worker may only create objects in it
//! (`terraform/modules/ledger_digests`), so nobody with the database's admin rights — nor the
//! worker — can rewrite or remove a digest. `suitex-events verify --digests` holds the chain
//! to every digest: a chain recomputed after a change, or the newest rows removed, is caught.
//!
//! Digests are numbered 1, 2, 3 … and named `ledger/{number:012}.json`, written create-only
//! (`if_generation_match = 0`) once the one before exists, so a reader finds them all by
//! counting up until one is missing — no listing right is needed — and a new leader finds
//! where to go on by probing (a doubling search, then a bisection).

use crate::config::Config;
use crate::error::{Error, Result, Service};
use crate::store::Checkpoint;
use bytes::Bytes;
use google_cloud_storage::client::Storage;
use serde::{Deserialize, Serialize};

/// One digest object's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The encoding the chain uses (`suitex-ledger/1`).
    pub encoding: String,
    /// The digest's number.
    pub digest: u64,
    /// The row it records.
    pub seq: u64,
    /// That row's `row_hash` when the digest was written.
    pub row_hash: String,
    /// That row's `created_at` (UTC, microseconds).
    pub created_at: String,
    /// When the digest was written (RFC 3339 UTC).
    pub written_at: String,
}

impl Digest {
    /// What `verify` holds the chain to.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint { digest: self.digest, seq: self.seq, row_hash: self.row_hash.clone() }
    }
}

/// The digest bucket: write the next digest, read them all.
pub struct Digests {
    storage: Storage,
    bucket: String,
    bucket_path: String,
}

/// The object a digest is kept in.
pub fn object_name(number: u64) -> String {
    format!("ledger/{number:012}.json")
}

impl Digests {
    /// The digests kept in `bucket`, through `config`'s Cloud Storage endpoint.
    pub async fn connect(config: &Config, bucket: &str) -> Result<Digests> {
        Ok(Digests {
            storage: crate::clients::storage(config).await?,
            bucket: bucket.to_string(),
            bucket_path: format!("projects/_/buckets/{bucket}"),
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Digest `number`, or `None` when there is none.
    pub async fn read(&self, number: u64) -> Result<Option<Digest>> {
        let object = object_name(number);
        let op = || format!("reading gs://{}/{object}", self.bucket);
        let mut resp = match self.storage.read_object(&self.bucket_path, &object).send().await {
            Ok(resp) => resp,
            Err(e) if e.http_status_code() == Some(404) => return Ok(None),
            Err(e) => return Err(Error::google(Service::Storage, op(), e)),
        };
        let mut buf = Vec::new();
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(|e| Error::google(Service::Storage, op(), e))?;
            buf.extend_from_slice(&chunk);
            if buf.len() > 64 * 1024 {
                break;
            }
        }
        let digest: Digest = serde_json::from_slice(&buf)
            .map_err(|e| Error::service(Service::Storage, format!("{}: not a digest", op()), false, e))?;
        if digest.digest != number {
            return Err(Error::service(
                Service::Storage,
                op(),
                false,
                format!("the object says it is digest {}", digest.digest),
            ));
        }
        Ok(Some(digest))
    }

    /// Every digest, in order (counting up until one is missing).
    pub async fn all(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        while let Some(d) = self.read(out.len() as u64 + 1).await? {
            out.push(d);
        }
        Ok(out)
    }

    /// The number of the last digest written (0: none), found with O(log n) reads.
    pub async fn last_number(&self) -> Result<u64> {
        let exists = |n: u64| async move { self.read(n).await.map(|d| d.is_some()) };
        if !exists(1).await? {
            return Ok(0);
        }
        // Double until one is missing, then bisect between the last present and it.
        let (mut present, mut missing) = (1u64, 2u64);
        while exists(missing).await? {
            present = missing;
            missing *= 2;
        }
        while missing - present > 1 {
            let mid = present + (missing - present) / 2;
            if exists(mid).await? {
                present = mid;
            } else {
                missing = mid;
            }
        }
        Ok(present)
    }

    /// Writes `digest` create-only. `Ok(false)` when its number is taken already (another
    /// leader wrote it): the caller finds the last number again.
    pub async fn write(&self, digest: &Digest) -> Result<bool> {
        let object = object_name(digest.digest);
        let body = Bytes::from(serde_json::to_vec(digest).expect("a digest serializes"));
        match self
            .storage
            .write_object(&self.bucket_path, &object, body)
            .set_if_generation_match(0)
            .set_content_type("application/json")
            .send_buffered()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.http_status_code() == Some(412) => Ok(false),
            Err(e) => {
                Err(Error::google(Service::Storage, format!("writing gs://{}/{object}", self.bucket), e))
            }
        }
    }
}
