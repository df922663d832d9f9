//! The trade bill (交易账单), type ALL: the CSV the reconciler reads each
//! morning and the simulator serves (wechatpay-v3.md §7).
//!
//! Layout: a header row of the 27 column names, one row per payment or
//! refund, a summary header row, one summary row. Every value in the detail
//! and summary rows carries a leading backtick (so Excel keeps long digit
//! strings as text); an empty value is a lone backtick; header rows have
//! none. Amounts are yuan with two places (the fee with five), unlike the
//! API's fen: parsing converts them exactly with `crate::money`, never
//! through a float.
//!
//! The format has no quoting, so a comma or line break inside a value would
//! shift every column after it. `render` replaces them with spaces (only
//! free text such as the product name can hold them); `parse` refuses a row
//! whose column count is wrong rather than guess.

use crate::money::{self, MoneyError};
use rust_decimal::Decimal;

/// The ALL bill's detail columns, in order.
pub const ALL_COLUMNS: [&str; 27] = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

/// The ALL bill's summary columns, in order.
pub const SUMMARY_COLUMNS: [&str; 7] = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
];

/// Decimal places of the fee (`手续费`, `手续费总金额`): `0.00600`.
const FEE_SCALE: u32 = 5;
/// A bill of more rows than this is refused: a day of one merchant's trades
/// is far below it, and the reconciler holds the rows in memory.
pub const BILL_ROWS_MAX: usize = 5_000_000;

/// One payment or refund line. Amounts are fen except the fee, which has
/// sub-fen precision (five places of yuan).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BillRow {
    /// `yyyy-MM-dd HH:mm:ss`, Beijing time: payment time, or refund initiation.
    pub trade_time: String,
    pub appid: String,
    pub mchid: String,
    /// `0` for a direct merchant.
    pub sub_mchid: String,
    pub device_info: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    pub openid: String,
    /// `JSAPI` for Mini Program payments too.
    pub trade_type: String,
    /// `SUCCESS`, `REFUND` or `REVOKED`.
    pub trade_state: String,
    pub bank_type: String,
    pub currency: String,
    /// 应结订单金额: the order amount less non-recharge coupons.
    pub settlement_total_fen: i64,
    pub coupon_fen: i64,
    /// `0` on rows without a refund.
    pub refund_id: String,
    /// `0` on rows without a refund.
    pub out_refund_no: String,
    pub refund_fen: i64,
    pub recharge_coupon_refund_fen: i64,
    pub refund_type: String,
    pub refund_status: String,
    /// 商品名称: the order's `description`.
    pub description: String,
    /// 商户数据包: the order's `attach`.
    pub attach: String,
    pub fee_yuan: Decimal,
    /// e.g. `0.60%`, kept as text.
    pub rate: String,
    /// 订单金额.
    pub total_fen: i64,
    pub refund_requested_fen: i64,
    pub rate_note: String,
}

/// The summary line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BillSummary {
    pub trade_count: u64,
    pub settlement_total_fen: i64,
    pub refund_total_fen: i64,
    pub recharge_coupon_refund_total_fen: i64,
    pub fee_total_yuan: Decimal,
    pub order_total_fen: i64,
    pub refund_requested_total_fen: i64,
}

impl BillSummary {
    /// Totals of `rows` as WeChat reports them: every row counts as a trade.
    pub fn from_rows(rows: &[BillRow]) -> Self {
        let mut summary = Self {
            trade_count: rows.len() as u64,
            ..Self::default()
        };
        for row in rows {
            summary.settlement_total_fen += row.settlement_total_fen;
            summary.refund_total_fen += row.refund_fen;
            summary.recharge_coupon_refund_total_fen += row.recharge_coupon_refund_fen;
            summary.fee_total_yuan += row.fee_yuan;
            summary.order_total_fen += row.total_fen;
            summary.refund_requested_total_fen += row.refund_requested_fen;
        }
        summary
    }
}

/// A parsed bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub rows: Vec<BillRow>,
    pub summary: BillSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    #[error("line 1 is not the ALL bill's header row")]
    Header,
    #[error("line {line}: {found} columns, expected {expected}")]
    ColumnCount {
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("line {line}, column {column}: value does not start with a backtick")]
    MissingBacktick { line: usize, column: &'static str },
    #[error("line {line}, column {column}: {value:?} is not an amount in yuan ({reason})")]
    Amount {
        line: usize,
        column: &'static str,
        value: String,
        reason: String,
    },
    #[error("line {line}: {value:?} is not a trade count")]
    TradeCount { line: usize, value: String },
    #[error("the summary rows are missing")]
    MissingSummary,
    #[error("line {line}: unexpected content after the summary row")]
    TrailingContent { line: usize },
    #[error("more than {BILL_ROWS_MAX} rows")]
    TooManyRows,
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// The bill as WeChat serves it: header, rows, summary header, summary;
/// `\r\n` line ends.
pub fn render(rows: &[BillRow], summary: &BillSummary) -> String {
    let mut text = String::with_capacity(512 + rows.len() * 400);
    push_line(&mut text, ALL_COLUMNS.iter().map(|name| name.to_string()));
    for row in rows {
        push_line(
            &mut text,
            render_row(row).into_iter().map(|value| cell(&value)),
        );
    }
    push_line(
        &mut text,
        SUMMARY_COLUMNS.iter().map(|name| name.to_string()),
    );
    let summary_values = [
        summary.trade_count.to_string(),
        fen_text(summary.settlement_total_fen),
        fen_text(summary.refund_total_fen),
        fen_text(summary.recharge_coupon_refund_total_fen),
        fee_text(summary.fee_total_yuan),
        fen_text(summary.order_total_fen),
        fen_text(summary.refund_requested_total_fen),
    ];
    push_line(&mut text, summary_values.iter().map(|value| cell(value)));
    text
}

fn render_row(row: &BillRow) -> [String; 27] {
    [
        row.trade_time.clone(),
        row.appid.clone(),
        row.mchid.clone(),
        row.sub_mchid.clone(),
        row.device_info.clone(),
        row.transaction_id.clone(),
        row.out_trade_no.clone(),
        row.openid.clone(),
        row.trade_type.clone(),
        row.trade_state.clone(),
        row.bank_type.clone(),
        row.currency.clone(),
        fen_text(row.settlement_total_fen),
        fen_text(row.coupon_fen),
        row.refund_id.clone(),
        row.out_refund_no.clone(),
        fen_text(row.refund_fen),
        fen_text(row.recharge_coupon_refund_fen),
        row.refund_type.clone(),
        row.refund_status.clone(),
        row.description.clone(),
        row.attach.clone(),
        fee_text(row.fee_yuan),
        row.rate.clone(),
        fen_text(row.total_fen),
        fen_text(row.refund_requested_fen),
        row.rate_note.clone(),
    ]
}

fn push_line(text: &mut String, values: impl Iterator<Item = String>) {
    for (index, value) in values.enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&value);
    }
    text.push_str("\r\n");
}

/// A backtick-prefixed value with the separators the format cannot escape
/// replaced by spaces.
fn cell(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 1);
    out.push('`');
    out.extend(value.chars().map(|c| {
        if matches!(c, ',' | '\r' | '\n') {
            ' '
        } else {
            c
        }
    }));
    out
}

fn fen_text(fen: i64) -> String {
    money::format_yuan(Decimal::new(fen, 2))
}

fn fee_text(fee_yuan: Decimal) -> String {
    let mut rounded = fee_yuan;
    rounded.rescale(FEE_SCALE);
    rounded.to_string()
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// The detail rows of an ALL bill (see [`parse_bill`] for the summary too).
pub fn parse(text: &str) -> Result<Vec<BillRow>, BillError> {
    parse_bill(text).map(|bill| bill.rows)
}

/// Parses an ALL bill: exact header, detail rows, summary header, summary
/// row; a leading BOM, `\r\n` or `\n` line ends and trailing blank lines are
/// accepted.
pub fn parse_bill(text: &str) -> Result<Bill, BillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    let header = lines.next().map(|(_, line)| line).unwrap_or_default();
    if !header
        .split(',')
        .map(str::trim)
        .eq(ALL_COLUMNS.iter().copied())
    {
        return Err(BillError::Header);
    }
    let mut rows = Vec::new();
    let summary = loop {
        let (line_number, line) = lines.next().ok_or(BillError::MissingSummary)?;
        if line.starts_with(SUMMARY_COLUMNS[0]) {
            let (summary_line, summary_text) = lines.next().ok_or(BillError::MissingSummary)?;
            break parse_summary(summary_line, summary_text)?;
        }
        if rows.len() == BILL_ROWS_MAX {
            return Err(BillError::TooManyRows);
        }
        rows.push(parse_row(line_number, line)?);
    };
    if let Some((line, _)) = lines.find(|(_, line)| !line.trim().is_empty()) {
        return Err(BillError::TrailingContent { line });
    }
    Ok(Bill { rows, summary })
}

/// Splits a backticked line into its values, checking count and backticks.
fn cells<'a, const N: usize>(
    line_number: usize,
    line: &'a str,
    columns: &[&'static str; N],
) -> Result<[&'a str; N], BillError> {
    let raw: Vec<&str> = line.split(',').collect();
    if raw.len() != N {
        return Err(BillError::ColumnCount {
            line: line_number,
            found: raw.len(),
            expected: N,
        });
    }
    let mut values = [""; N];
    for (index, value) in raw.iter().enumerate() {
        values[index] = value.strip_prefix('`').ok_or(BillError::MissingBacktick {
            line: line_number,
            column: columns[index],
        })?;
    }
    Ok(values)
}

fn parse_row(line_number: usize, line: &str) -> Result<BillRow, BillError> {
    let values = cells(line_number, line, &ALL_COLUMNS)?;
    let fen = |index: usize| parse_fen(line_number, ALL_COLUMNS[index], values[index]);
    let text = |index: usize| values[index].to_owned();
    Ok(BillRow {
        trade_time: text(0),
        appid: text(1),
        mchid: text(2),
        sub_mchid: text(3),
        device_info: text(4),
        transaction_id: text(5),
        out_trade_no: text(6),
        openid: text(7),
        trade_type: text(8),
        trade_state: text(9),
        bank_type: text(10),
        currency: text(11),
        settlement_total_fen: fen(12)?,
        coupon_fen: fen(13)?,
        refund_id: text(14),
        out_refund_no: text(15),
        refund_fen: fen(16)?,
        recharge_coupon_refund_fen: fen(17)?,
        refund_type: text(18),
        refund_status: text(19),
        description: text(20),
        attach: text(21),
        fee_yuan: parse_fee(line_number, ALL_COLUMNS[22], values[22])?,
        rate: text(23),
        total_fen: fen(24)?,
        refund_requested_fen: fen(25)?,
        rate_note: text(26),
    })
}

fn parse_summary(line_number: usize, line: &str) -> Result<BillSummary, BillError> {
    let values = cells(line_number, line, &SUMMARY_COLUMNS)?;
    let fen = |index: usize| parse_fen(line_number, SUMMARY_COLUMNS[index], values[index]);
    Ok(BillSummary {
        trade_count: values[0].parse().map_err(|_| BillError::TradeCount {
            line: line_number,
            value: values[0].to_owned(),
        })?,
        settlement_total_fen: fen(1)?,
        refund_total_fen: fen(2)?,
        recharge_coupon_refund_total_fen: fen(3)?,
        fee_total_yuan: parse_fee(line_number, SUMMARY_COLUMNS[4], values[4])?,
        order_total_fen: fen(5)?,
        refund_requested_total_fen: fen(6)?,
    })
}

/// `"12.34"` → 1234 exactly. `money::parse_yuan` refuses zero (prices must
/// be positive) but bills are full of `0.00`; it reports zero as
/// `NotPositive` only after the text proved well formed, so that case is 0.
/// An empty value (a lone backtick) is 0 too.
fn parse_fen(line: usize, column: &'static str, value: &str) -> Result<i64, BillError> {
    if value.is_empty() {
        return Ok(0);
    }
    let amount_error = |reason: MoneyError| BillError::Amount {
        line,
        column,
        value: value.to_owned(),
        reason: reason.to_string(),
    };
    match money::parse_yuan(value) {
        Ok(yuan) => money::yuan_to_fen(yuan).map_err(amount_error),
        Err(MoneyError::NotPositive) => Ok(0),
        Err(error) => Err(amount_error(error)),
    }
}

/// The fee in yuan with up to five places, never negative.
fn parse_fee(line: usize, column: &'static str, value: &str) -> Result<Decimal, BillError> {
    if value.is_empty() {
        return Ok(Decimal::ZERO);
    }
    let amount_error = |reason: &str| BillError::Amount {
        line,
        column,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if !value
        .bytes()
        .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return Err(amount_error("not a decimal"));
    }
    let fee: Decimal = value.parse().map_err(|_| amount_error("not a decimal"))?;
    if fee.normalize().scale() > FEE_SCALE {
        return Err(amount_error("more than five places"));
    }
    Ok(fee)
}

#[cfg(test)]
#[path = "bill_tests.rs"]
mod tests;
