//! Practices, API keys, idempotency records and SMS counters in SQLite (the schema is in
//! `sqlite.rs`): the records around the shares, each keyed by its practice.

use super::sqlite::{SqliteStore, db_err, from_json, to_json, us};
use crate::domain::{ApiKey, Practice, PracticeId};
use crate::ports::{Claim, IdempotencyStore, PortResult, PracticeStore, SmsCounter};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl PracticeStore for SqliteStore {
    async fn put_practice(&self, practice: &Practice) -> PortResult<()> {
        let practice = practice.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO practices (id, created_us, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![practice.id.as_str(), us(practice.created_at), to_json(&practice)?],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_practice(&self, id: &PracticeId) -> PortResult<Option<Practice>> {
        let id = id.clone();
        self.read(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM practices WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
                .map_err(db_err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_practices(&self) -> PortResult<Vec<Practice>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM practices ORDER BY created_us, id").map_err(db_err)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db_err)?;
            rows.map(|r| from_json(&r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn put_api_key(&self, key: &ApiKey) -> PortResult<()> {
        let key = key.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, practice_id, hash, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![key.id, key.practice_id.as_str(), key.hash, to_json(&key)?],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, hash: &str) -> PortResult<Option<ApiKey>> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM api_keys WHERE hash = ?1")
                .and_then(|mut s| s.query_row([hash], |r| r.get(0)).optional())
                .map_err(db_err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_api_keys(&self, practice: &PracticeId) -> PortResult<Vec<ApiKey>> {
        let practice = practice.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM api_keys WHERE practice_id = ?1 ORDER BY id").map_err(db_err)?;
            let rows = stmt.query_map([practice.as_str()], |r| r.get::<_, String>(0)).map_err(db_err)?;
            let mut keys: Vec<ApiKey> = rows.map(|r| from_json(&r.map_err(db_err)?)).collect::<PortResult<_>>()?;
            keys.sort_by_key(|k| k.created_at);
            Ok(keys)
        })
        .await
    }

    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> PortResult<bool> {
        let key_id = key_id.to_owned();
        self.write(move |conn| {
            let body: Option<String> =
                conn.query_row("SELECT body FROM api_keys WHERE id = ?1", [&key_id], |r| r.get(0)).optional().map_err(db_err)?;
            let Some(body) = body else { return Ok(false) };
            let mut key: ApiKey = from_json(&body)?;
            key.revoked_at.get_or_insert(now);
            conn.execute("UPDATE api_keys SET body = ?2 WHERE id = ?1", params![key_id, to_json(&key)?]).map_err(db_err)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(
        &self,
        practice: &PracticeId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> PortResult<Claim> {
        let (practice, key, fingerprint) = (practice.clone(), key.to_owned(), fingerprint.to_owned());
        self.write(move |conn| {
            let existing: Option<(String, Option<i64>, Option<String>, i64)> = conn
                .query_row(
                    "SELECT fingerprint, status, response, created_us FROM idempotency WHERE practice_id = ?1 AND key = ?2",
                    params![practice.as_str(), key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(db_err)?;
            let claim = match existing {
                Some((fp, Some(status), Some(body), _)) => Claim::Completed { fingerprint: fp, status: status as u16, body },
                Some((fp, _, _, created)) if created > us(stale_before) => Claim::InProgress { fingerprint: fp },
                _ => {
                    conn.execute(
                        "INSERT OR REPLACE INTO idempotency (practice_id, key, fingerprint, status, response, created_us)
                         VALUES (?1, ?2, ?3, NULL, NULL, ?4)",
                        params![practice.as_str(), key, fingerprint, us(now)],
                    )
                    .map_err(db_err)?;
                    Claim::Claimed
                }
            };
            Ok(claim)
        })
        .await
    }

    async fn complete_idempotency(&self, practice: &PracticeId, key: &str, status: u16, body: &str) -> PortResult<()> {
        let (practice, key, body) = (practice.clone(), key.to_owned(), body.to_owned());
        self.write(move |conn| {
            conn.execute(
                "UPDATE idempotency SET status = ?3, response = ?4 WHERE practice_id = ?1 AND key = ?2",
                params![practice.as_str(), key, status, body],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn release_idempotency(&self, practice: &PracticeId, key: &str) -> PortResult<()> {
        let (practice, key) = (practice.clone(), key.to_owned());
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM idempotency WHERE practice_id = ?1 AND key = ?2 AND status IS NULL",
                params![practice.as_str(), key],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl SmsCounter for SqliteStore {
    async fn take_sms(&self, practice: &PracticeId, day: &str, cap: u32) -> PortResult<bool> {
        let (practice, day) = (practice.clone(), day.to_owned());
        self.write(move |conn| {
            // One statement: insert the first, or count up only while under the cap.
            let changed = conn
                .execute(
                    "INSERT INTO sms_counters (practice_id, day, count) SELECT ?1, ?2, 1 WHERE ?3 > 0
                     ON CONFLICT (practice_id, day) DO UPDATE SET count = count + 1 WHERE count < ?3",
                    params![practice.as_str(), day, cap],
                )
                .map_err(db_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn give_back_sms(&self, practice: &PracticeId, day: &str) -> PortResult<()> {
        let (practice, day) = (practice.clone(), day.to_owned());
        self.write(move |conn| {
            conn.execute(
                "UPDATE sms_counters SET count = count - 1 WHERE practice_id = ?1 AND day = ?2 AND count > 0",
                params![practice.as_str(), day],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn the_sms_cap_is_never_exceeded() {
        let (_d, s) = store();
        let p = PracticeId::generate();
        let mut sent = 0;
        for _ in 0..5 {
            if s.take_sms(&p, "2026-01-01", 3).await.unwrap() {
                sent += 1;
            }
        }
        assert_eq!(sent, 3);
        assert!(s.take_sms(&p, "2026-01-02", 3).await.unwrap(), "a new day, a new count");
        assert!(!s.take_sms(&p, "2026-01-03", 0).await.unwrap(), "a cap of 0 sends nothing");
        s.give_back_sms(&p, "2026-01-01").await.unwrap();
        assert!(s.take_sms(&p, "2026-01-01", 3).await.unwrap(), "a unit given back is there again");
        assert!(!s.take_sms(&p, "2026-01-01", 3).await.unwrap());
        s.give_back_sms(&p, "2026-01-04").await.unwrap();
        assert!(!s.take_sms(&p, "2026-01-04", 0).await.unwrap(), "never below zero");
    }

    #[tokio::test]
    async fn idempotency_claims_complete_release_and_go_stale() {
        let (_d, s) = store();
        let p = PracticeId::generate();
        let now = Utc::now();
        let stale = now - Duration::seconds(120);
        assert_eq!(s.claim_idempotency(&p, "k", "f1", now, stale).await.unwrap(), Claim::Claimed);
        assert_eq!(s.claim_idempotency(&p, "k", "f1", now, stale).await.unwrap(), Claim::InProgress { fingerprint: "f1".into() });
        s.release_idempotency(&p, "k").await.unwrap();
        assert_eq!(s.claim_idempotency(&p, "k", "f1", now, stale).await.unwrap(), Claim::Claimed);
        s.complete_idempotency(&p, "k", 201, "{}").await.unwrap();
        assert_eq!(
            s.claim_idempotency(&p, "k", "f2", now, stale).await.unwrap(),
            Claim::Completed { fingerprint: "f1".into(), status: 201, body: "{}".into() }
        );
        // A claim never completed (a crash) is taken over once stale.
        assert_eq!(s.claim_idempotency(&p, "k2", "f", now, stale).await.unwrap(), Claim::Claimed);
        let later = now + Duration::seconds(300);
        assert_eq!(s.claim_idempotency(&p, "k2", "f", later, later - Duration::seconds(120)).await.unwrap(), Claim::Claimed);
        // Keys are per practice.
        assert_eq!(s.claim_idempotency(&PracticeId::generate(), "k", "f1", now, stale).await.unwrap(), Claim::Claimed);
    }
}
