//! A lenient byte-level JSON scanner (strings and bracket depth only, any bytes, never panics):
//! splits damaged bodies into items for salvage and finds keys for lexical redaction.

/// Index of the first byte at or after `i` that is not JSON whitespace.
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// End (exclusive) of the string whose opening quote is at `i`, or `None` if the input ends
/// inside it.
pub(crate) fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        if j > b.len() {
            return None;
        }
        let k = j + memchr::memchr2(b'"', b'\\', &b[j..])?;
        if b[k] == b'"' {
            return Some(k + 1);
        }
        j = k + 2;
    }
}

/// True for bytes that end a bare scalar (`123`, `true`, junk).
fn ends_scalar(c: u8) -> bool {
    matches!(
        c,
        b',' | b':' | b']' | b'}' | b'[' | b'{' | b'"' | b' ' | b'\t' | b'\n' | b'\r'
    )
}

/// End (exclusive) of a bare scalar starting at `i`; always consumes at least one byte.
fn scalar_end(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() && !ends_scalar(b[j]) {
        j += 1;
    }
    if j == i {
        j + 1
    } else {
        j
    }
}

/// End (exclusive) of the container that is open at `i` with `depth` unclosed brackets, or `None`
/// if the input ends first. Brackets are not matched by type: `{]` closes.
pub(crate) fn container_end_from(b: &[u8], mut i: usize, mut depth: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = string_end(b, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// End (exclusive) of the value starting at `i` (a non-whitespace byte), or `None` if the input
/// ends inside it.
pub(crate) fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => container_end_from(b, i + 1, 1),
        _ => Some(scalar_end(b, i)),
    }
}

/// The items of an array that opens at `start` (`b[start] == b'['`).
#[derive(Debug, Default)]
pub(crate) struct ArrayScan {
    /// Byte ranges of the complete items, in order.
    pub items: Vec<(usize, usize)>,
    /// Start of an item the input ends inside (a truncated body).
    pub truncated_item: Option<usize>,
    /// Index just after the closing `]`, or `None` when the input ends first.
    pub end: Option<usize>,
}

/// Splits the array that opens at `start` into item ranges. Missing or doubled commas are
/// tolerated; a stray byte becomes a one-byte item (which then fails to parse).
pub(crate) fn split_array(b: &[u8], start: usize) -> ArrayScan {
    let mut scan = ArrayScan::default();
    let mut i = start + 1;
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b',') {
            i += 1;
        }
        if i >= b.len() {
            return scan;
        }
        if b[i] == b']' {
            scan.end = Some(i + 1);
            return scan;
        }
        match value_end(b, i) {
            Some(end) => {
                scan.items.push((i, end));
                i = end;
            }
            None => {
                scan.truncated_item = Some(i);
                return scan;
            }
        }
    }
}

/// What a top-level object turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ObjectShape {
    /// It has an `items` key whose value is an array opening at this index.
    List { items_start: usize },
    /// It has an `items` key whose value is `null`: an empty list; the object ends at `end`.
    EmptyList { end: Option<usize> },
    /// It has an `items` key whose value is neither an array nor `null`.
    BadItems { end: Option<usize> },
    /// No `items` key: a single event that ends at `end` (`None`: the input ends inside it).
    Single { end: Option<usize> },
    /// No `items` key but `"kind":"EventList"`: an empty list that ends at `end`.
    EmptyKindList { end: usize },
}

/// Looks at the top-level keys of the object that opens at `start` for an `items` array.
pub(crate) fn object_shape(b: &[u8], start: usize) -> ObjectShape {
    let mut i = start + 1;
    let mut event_list = false;
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b',') {
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            return ObjectShape::Single { end: None };
        };
        match c {
            b'}' if event_list => return ObjectShape::EmptyKindList { end: i + 1 },
            b'}' => return ObjectShape::Single { end: Some(i + 1) },
            b'"' => {
                let Some(key_end) = string_end(b, i) else {
                    return ObjectShape::Single { end: None };
                };
                let key = &b[i + 1..key_end - 1];
                let is_items = key == b"items";
                let is_kind = key == b"kind";
                i = skip_ws(b, key_end);
                if b.get(i) == Some(&b':') {
                    i = skip_ws(b, i + 1);
                }
                if is_items {
                    return match b.get(i) {
                        Some(b'[') => ObjectShape::List { items_start: i },
                        Some(b'n') => ObjectShape::EmptyList {
                            end: container_end_from(b, i, 1),
                        },
                        _ => ObjectShape::BadItems {
                            end: container_end_from(b, i, 1),
                        },
                    };
                }
                if i >= b.len() {
                    return ObjectShape::Single { end: None };
                }
                match value_end(b, i) {
                    Some(end) => {
                        if is_kind {
                            event_list = &b[i..end] == b"\"EventList\"";
                        }
                        i = end;
                    }
                    None => return ObjectShape::Single { end: None },
                }
            }
            // Junk where a key belongs: let the full parse report it.
            _ => {
                return ObjectShape::Single {
                    end: container_end_from(b, start + 1, 1),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_items_and_reports_truncation() {
        let b = br#"[{"a":"]}"}, [1,2] ,3,"x\"]", {"b":"#;
        let s = split_array(b, 0);
        let items: Vec<&[u8]> = s.items.iter().map(|&(a, e)| &b[a..e]).collect();
        assert_eq!(
            items,
            vec![
                &br#"{"a":"]}"}"#[..],
                &b"[1,2]"[..],
                &b"3"[..],
                &br#""x\"]""#[..]
            ]
        );
        assert_eq!(&b[s.truncated_item.unwrap()..], br#"{"b":"#);
        assert_eq!(s.end, None);
    }

    #[test]
    fn finds_items_of_an_event_list() {
        let b = br#"{"kind":"EventList","metadata":{"x":[1]},"items" : [ ]}"#;
        let ObjectShape::List { items_start } = object_shape(b, 0) else {
            panic!()
        };
        let s = split_array(b, items_start);
        assert!(s.items.is_empty());
        assert_eq!(container_end_from(b, s.end.unwrap(), 1), Some(b.len()));
        assert_eq!(
            object_shape(br#"{"auditID":"a"} "#, 0),
            ObjectShape::Single { end: Some(15) }
        );
        assert_eq!(
            object_shape(br#"{"auditID":"a"#, 0),
            ObjectShape::Single { end: None }
        );
    }

    #[test]
    fn stray_bytes_always_make_progress() {
        for b in [&b"[}]"[..], b"[::]", b"[\\", b"[\"\\", b"[,,,"] {
            let _ = split_array(b, 0);
        }
    }
}
