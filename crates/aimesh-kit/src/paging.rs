//! Opaque page tokens for keyset pagination.
//!
//! A token carries the cursor (the sort key of the last item returned) and a fingerprint of
//! the filters it was issued for, so a token replayed with other filters, truncated, or forged
//! is refused instead of silently paging through something else.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

const TOKEN_VERSION: u8 = 1;

/// Why a page token was refused; shown to clients as the `page_token` field violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    /// Not a token this server issued.
    #[error("is not a valid page token")]
    Malformed,
    /// Issued for a request with other filters.
    #[error("was issued for a request with other filters")]
    FilterMismatch,
}

/// Encodes a cursor and the filters it belongs to into a token.
pub fn encode(cursor: &[u8], filters: &str) -> String {
    let mut raw = Vec::with_capacity(9 + cursor.len());
    raw.push(TOKEN_VERSION);
    raw.extend_from_slice(&fingerprint(filters).to_be_bytes());
    raw.extend_from_slice(cursor);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a token issued by [`encode`] for the same filters, returning the cursor.
pub fn decode(token: &str, filters: &str) -> Result<Vec<u8>, PageTokenError> {
    if token.len() > 1024 {
        return Err(PageTokenError::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| PageTokenError::Malformed)?;
    let (&version, rest) = raw.split_first().ok_or(PageTokenError::Malformed)?;
    if version != TOKEN_VERSION || rest.len() < 8 {
        return Err(PageTokenError::Malformed);
    }
    let (print, cursor) = rest.split_at(8);
    if print != fingerprint(filters).to_be_bytes() {
        return Err(PageTokenError::FilterMismatch);
    }
    Ok(cursor.to_vec())
}

/// Page size when a list request asks for none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page size a list request may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Checks a list request's page size: 0 means [`DEFAULT_PAGE_SIZE`], at most
/// [`MAX_PAGE_SIZE`]. The error is the `page_size` field violation.
pub fn validate_page_size(page_size: i32) -> Result<u32, String> {
    match u32::try_from(page_size) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(format!("must be between 0 and {MAX_PAGE_SIZE}")),
    }
}

/// Decodes the page token of a list request whose cursor is a resource id: `None` for no
/// token (the first page), else the id the previous page ended at, issued for the same filters.
pub fn decode_uuid(token: &str, filters: &str) -> Result<Option<uuid::Uuid>, PageTokenError> {
    if token.is_empty() {
        return Ok(None);
    }
    let cursor = decode(token, filters)?;
    uuid::Uuid::from_slice(&cursor)
        .map(Some)
        .map_err(|_| PageTokenError::Malformed)
}

/// Cuts the rows of a keyset query that fetched one row more than `page_size` down to the
/// page, and returns the cursor of its last row when more rows follow (`None` on the last page).
pub fn take_page<T, C>(rows: &mut Vec<T>, page_size: u32, cursor: impl Fn(&T) -> C) -> Option<C> {
    let page_size = page_size as usize;
    if rows.len() <= page_size {
        return None;
    }
    rows.truncate(page_size);
    rows.last().map(cursor)
}

/// FNV-1a: stable across processes and releases, unlike the std hasher.
fn fingerprint(filters: &str) -> u64 {
    filters.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reads every page of a keyset-paged listing (an account's export): `page(cursor)` returns
/// one page's items and the cursor of the next page, `None` after the last.
pub async fn all_pages<T, C, E, F, Fut>(mut page: F) -> Result<Vec<T>, E>
where
    F: FnMut(Option<C>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<C>), E>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let (batch, next) = page(cursor.take()).await?;
        items.extend(batch);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_pages_follows_the_cursor_to_the_end() {
        let items = all_pages(|cursor: Option<u32>| async move {
            let start = cursor.unwrap_or(0);
            let end = (start + 3).min(7);
            Ok::<_, ()>(((start..end).collect::<Vec<_>>(), (end < 7).then_some(end)))
        })
        .await;
        assert_eq!(items, Ok((0..7).collect::<Vec<_>>()));
    }

    #[test]
    fn take_page_keeps_the_page_and_says_whether_more_follow() {
        let mut rows = vec![5, 4, 3];
        assert_eq!(take_page(&mut rows, 2, |row| *row), Some(4));
        assert_eq!(rows, [5, 4]);
        let mut last = vec![2, 1];
        assert_eq!(take_page(&mut last, 2, |row| *row), None);
        assert_eq!(last, [2, 1]);
    }

    #[test]
    fn round_trips_for_the_same_filters() {
        let token = encode(&[1, 2, 3], "lang=en");
        assert_eq!(decode(&token, "lang=en"), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn refuses_other_filters_and_garbage() {
        let token = encode(&[1, 2, 3], "lang=en");
        assert_eq!(
            decode(&token, "lang=fr"),
            Err(PageTokenError::FilterMismatch)
        );
        assert_eq!(decode("!!!", ""), Err(PageTokenError::Malformed));
        assert_eq!(decode("", ""), Err(PageTokenError::Malformed));
        assert_eq!(decode("AQ", ""), Err(PageTokenError::Malformed));
        assert_eq!(
            decode(&"A".repeat(5000), ""),
            Err(PageTokenError::Malformed)
        );
    }
}
