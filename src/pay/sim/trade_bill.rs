//! The trade bill (wechatpay-v3.md §7): `GET /v3/bill/tradebill` renders a
//! Beijing day's lines with `crate::pay::bill`, keeps the bytes under a
//! random token and answers their SHA-1 with a download URL; the signed
//! `GET /v3/billdownload/file?token=` returns those exact bytes, unsigned.
//!
//! Choices: a bill exists for any day with a payment or a refund, today
//! included, built when asked (the real one is generated after 09:00 the
//! next day); only `bill_type=ALL` without `tar_type` is served (the bill
//! module renders ALL only); a download URL is valid 5 minutes (the 2024
//! page; older pages say 30 s, uncertainty 7), and an expired or unknown
//! token is answered 404 `RESOURCE_NOT_EXISTS` (the real answer is not
//! recorded).

use super::api_error::ApiError;
use super::routes::query_param;
use super::Shared;
use crate::clock::{beijing_day_start, UnixMs};
use crate::pay::bill::{self, BillSummary};
use crate::pay::crypto::{random_alphanumeric, sha1_hex};
use crate::pay::wire::TradeBillResponse;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// Bill files kept for download; the oldest goes first.
pub const BILL_FILES_MAX: usize = 8;
pub const DOWNLOAD_URL_VALID_MS: i64 = 5 * 60_000;
const DAY_MS: i64 = 86_400_000;
const TOKEN_LEN: usize = 32;

#[derive(Default)]
pub struct BillFiles {
    files: Mutex<VecDeque<BillFile>>,
}

struct BillFile {
    token: String,
    created_at_ms: UnixMs,
    bytes: Bytes,
}

/// `GET /v3/bill/tradebill?bill_date=YYYY-MM-DD[&bill_type=ALL]`.
pub fn request(shared: &Shared, query: &str, now: UnixMs) -> Result<TradeBillResponse, ApiError> {
    let bill_date = query_param(query, "bill_date")
        .ok_or_else(|| ApiError::param_query("bill_date", "缺少必填参数bill_date"))?;
    let day_start = beijing_day_start(&bill_date)
        .ok_or_else(|| ApiError::param_query("bill_date", "bill_date格式应为YYYY-MM-DD"))?;
    match query_param(query, "bill_type").as_deref() {
        None | Some("ALL") => {}
        Some(_) => {
            let message = "the simulator serves bill_type=ALL only";
            return Err(ApiError::param_query("bill_type", message));
        }
    }
    if query_param(query, "tar_type").is_some() {
        let message = "the simulator serves uncompressed bills only";
        return Err(ApiError::param_query("tar_type", message));
    }
    let rows = shared
        .lock_ledger()
        .bill_rows(day_start, day_start + DAY_MS);
    if rows.is_empty() {
        return Err(ApiError::no_statement_exist());
    }
    let text = bill::render(&rows, &BillSummary::from_rows(&rows));
    let hash_value = sha1_hex(text.as_bytes());
    let token = random_alphanumeric(TOKEN_LEN);
    shared.bill_files.keep(BillFile {
        token: token.clone(),
        created_at_ms: now,
        bytes: Bytes::from(text),
    });
    Ok(TradeBillResponse {
        hash_type: "SHA1".into(),
        hash_value,
        download_url: format!("{}/v3/billdownload/file?token={token}", shared.base_url),
    })
}

/// `GET /v3/billdownload/file?token=...`: the bytes, while the URL is valid.
pub fn download(shared: &Shared, query: &str, now: UnixMs) -> Result<Bytes, ApiError> {
    let token = query_param(query, "token")
        .ok_or_else(|| ApiError::param_query("token", "缺少必填参数token"))?;
    shared
        .bill_files
        .find(&token, now)
        .ok_or_else(|| ApiError::resource_not_exists("账单下载链接无效或已过期"))
}

impl BillFiles {
    fn keep(&self, file: BillFile) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if files.len() == BILL_FILES_MAX {
            files.pop_front();
        }
        files.push_back(file);
    }

    fn find(&self, token: &str, now: UnixMs) -> Option<Bytes> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files
            .iter()
            .find(|file| file.token == token && now < file.created_at_ms + DOWNLOAD_URL_VALID_MS)
            .map(|file| file.bytes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(token: &str, created_at_ms: UnixMs) -> BillFile {
        BillFile {
            token: token.into(),
            created_at_ms,
            bytes: Bytes::from(token.to_owned()),
        }
    }

    #[test]
    fn files_expire_and_the_oldest_make_room() {
        let files = BillFiles::default();
        files.keep(file("first", 0));
        assert_eq!(
            files.find("first", DOWNLOAD_URL_VALID_MS - 1).as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(files.find("first", DOWNLOAD_URL_VALID_MS), None);
        assert_eq!(files.find("other", 0), None);
        for index in 0..BILL_FILES_MAX {
            files.keep(file(&format!("t{index}"), 0));
        }
        assert_eq!(files.find("first", 0), None, "pushed out");
        assert!(files.find("t0", 0).is_some());
    }
}
