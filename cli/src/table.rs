//! Plain-text tables: a header line and one line per row, each column as wide as its
//! widest cell, two spaces apart, no trailing spaces. `list` and `catalog` print theirs
//! this way.

use std::fmt::Write as _;

/// `header` and `rows` as aligned lines.
pub fn render<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.as_ref().iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [vec!["a".to_owned(), "long cell".to_owned(), "x".to_owned()]];
        assert_eq!(
            super::render(&["ONE", "TWO", "THREE"], &rows),
            "ONE  TWO        THREE\na    long cell  x\n"
        );
    }
}
