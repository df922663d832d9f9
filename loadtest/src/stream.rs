//! The request stream, built whole before any timing.
//!
//! Signing a session token (JSON, Base64, HMAC-SHA256) and formatting an
//! Idempotency-Key per request would cost the generator about a core at
//! the rates measured here, and would cost it differently for the gateway
//! and for the ceiling. So every request's header values and body exist
//! before the first round starts; sending one clones three `HeaderValue`s
//! and a `Bytes` (reference counts, no copy).
//!
//! Request `i` of round `r` is buyer `i mod buyers` (its own token), key
//! `<run>-<r>-<i>` and the body naming round `r`'s sale and SKU `i mod skus`.
//! Every gateway round has a fresh sale and fresh keys (a key that made an
//! order stays bound to it while the node runs); ceiling rounds replay a
//! gateway round's exact bytes.

use bytes::Bytes;
use flashgate::http::auth::SessionKeys;
use hyper::header::HeaderValue;
use std::time::Instant;

/// Tokens are valid this long after the stream is built.
const TOKEN_VALID_SECONDS: i64 = 24 * 3600;

/// What to build.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// Tells this run's buyers, keys and sales from any earlier run's on the
    /// same gateway.
    pub run_id: String,
    /// A short tag of the stream's purpose ("t" timed, "f" fill), part of
    /// buyer ids and keys.
    pub tag: &'static str,
    /// The tag in the sale ids (a fill stream orders from the timed rounds' sales).
    pub sale_tag: &'static str,
    pub requests: usize,
    pub buyers: usize,
    pub rounds: usize,
    pub skus: usize,
    pub session_secret: String,
}

/// One round's keys and bodies.
pub struct RoundStream {
    pub sale_id: String,
    keys: Vec<HeaderValue>,
    bodies: Vec<Bytes>,
}

pub struct RequestStream {
    /// `Bearer <token>` per buyer.
    authorizations: Vec<HeaderValue>,
    openids: Vec<String>,
    rounds: Vec<RoundStream>,
    pub sku_ids: Vec<String>,
    pub build_seconds: f64,
}

/// The parts of one request.
pub struct Parts<'a> {
    pub authorization: &'a HeaderValue,
    pub idempotency_key: &'a HeaderValue,
    pub body: &'a Bytes,
}

impl RequestStream {
    pub fn build(spec: &StreamSpec) -> RequestStream {
        assert!(spec.requests >= 1 && spec.buyers >= 1 && spec.rounds >= 1 && spec.skus >= 1);
        let started = Instant::now();
        let openids: Vec<String> = (0..spec.buyers)
            .map(|buyer| format!("o_lt_{}_{}_{buyer:09}", spec.run_id, spec.tag))
            .collect();
        let authorizations = sign_all(&openids, spec.session_secret.as_bytes());
        let sku_ids: Vec<String> = (0..spec.skus).map(|sku| format!("sku-{sku:03}")).collect();
        let rounds = (0..spec.rounds)
            .map(|round| {
                let sale_id = format!("lt-{}-{}{round}", spec.run_id, spec.sale_tag);
                let keys = (0..spec.requests)
                    .map(|index| {
                        let key = format!("{}-{}{round}-{index:09}", spec.run_id, spec.tag);
                        HeaderValue::from_str(&key).expect("keys are printable ASCII")
                    })
                    .collect();
                let bodies = sku_ids
                    .iter()
                    .map(|sku| {
                        Bytes::from(format!(
                            r#"{{"sale_id":"{sale_id}","sku_id":"{sku}","quantity":1}}"#
                        ))
                    })
                    .collect();
                RoundStream {
                    sale_id,
                    keys,
                    bodies,
                }
            })
            .collect();
        RequestStream {
            authorizations,
            openids,
            rounds,
            sku_ids,
            build_seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Requests per round.
    pub fn len(&self) -> usize {
        self.rounds[0].keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rounds(&self) -> usize {
        self.rounds.len()
    }

    pub fn sale_id(&self, round: usize) -> &str {
        &self.rounds[round].sale_id
    }

    pub fn parts(&self, round: usize, index: usize) -> Parts<'_> {
        let stream = &self.rounds[round];
        Parts {
            authorization: self.authorization(index),
            idempotency_key: &stream.keys[index],
            body: &stream.bodies[index % stream.bodies.len()],
        }
    }

    /// The `Authorization` value of request `index`'s buyer.
    pub fn authorization(&self, index: usize) -> &HeaderValue {
        &self.authorizations[index % self.authorizations.len()]
    }

    pub fn openid(&self, index: usize) -> &str {
        &self.openids[index % self.openids.len()]
    }
}

/// Signs one token per openid, on every CPU.
fn sign_all(openids: &[String], secret: &[u8]) -> Vec<HeaderValue> {
    let exp_seconds = flashgate::clock::now_ms() / 1000 + TOKEN_VALID_SECONDS;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = openids.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = openids
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let keys = SessionKeys::new(secret);
                    part.iter()
                        .map(|openid| {
                            let token = keys.issue(openid, exp_seconds);
                            HeaderValue::from_str(&format!("Bearer {token}"))
                                .expect("a JWT is a valid header value")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a signing thread panicked"))
            .collect()
    })
}

/// A run id: the start time in ms, hex (ids stay within 32 characters).
pub fn run_id() -> String {
    format!("{:x}", flashgate::clock::now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate::config::DEV_SESSION_SECRET;

    fn spec(requests: usize, buyers: usize) -> StreamSpec {
        StreamSpec {
            run_id: "19abc".into(),
            tag: "t",
            sale_tag: "t",
            requests,
            buyers,
            rounds: 2,
            skus: 3,
            session_secret: DEV_SESSION_SECRET.into(),
        }
    }

    #[test]
    fn every_request_has_its_own_buyer_and_key_and_rounds_their_own_sale() {
        let stream = RequestStream::build(&spec(10, 10));
        assert_eq!(stream.len(), 10);
        let keys = SessionKeys::new(DEV_SESSION_SECRET.as_bytes());
        let now = flashgate::clock::now_ms() / 1000;
        let first = stream.parts(0, 0);
        let token = first
            .authorization
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap();
        assert_eq!(keys.verify(token, now).unwrap(), stream.openid(0));
        assert_ne!(stream.parts(0, 1).authorization, first.authorization);
        assert_ne!(stream.parts(1, 0).idempotency_key, first.idempotency_key);
        assert_ne!(stream.sale_id(0), stream.sale_id(1));
        let body = std::str::from_utf8(stream.parts(1, 4).body).unwrap();
        assert_eq!(
            body,
            format!(
                r#"{{"sale_id":"{}","sku_id":"sku-001","quantity":1}}"#,
                stream.sale_id(1)
            )
        );
        assert!(stream.sale_id(0).len() <= 32);
    }

    #[test]
    fn fewer_buyers_repeat_in_turn() {
        let stream = RequestStream::build(&spec(6, 2));
        assert_eq!(
            stream.parts(0, 0).authorization,
            stream.parts(0, 2).authorization
        );
        assert_eq!(stream.openid(3), stream.openid(1));
    }
}
