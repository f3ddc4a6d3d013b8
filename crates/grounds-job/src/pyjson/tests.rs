//! Python's json and str, as the toolkit uses them.
use super::*;

#[test]
fn loads_follows_python() {
    assert_eq!(loads("1"), Some(PyValue::int(1)));
    assert_eq!(loads(" 12 "), Some(PyValue::int(12)));
    assert_eq!(loads("-0"), Some(PyValue::int(0)));
    assert_eq!(
        loads("1180591620717411303424"),
        Some(PyValue::Int("1180591620717411303424".into()))
    );
    assert_eq!(loads("1e-5"), Some(PyValue::Float(1e-5)));
    assert_eq!(loads("1E5"), Some(PyValue::Float(1e5)));
    assert!(matches!(loads("NaN"), Some(PyValue::Float(f)) if f.is_nan()));
    assert_eq!(loads("-Infinity"), Some(PyValue::Float(f64::NEG_INFINITY)));
    assert_eq!(loads("1e400"), Some(PyValue::Float(f64::INFINITY)));
    for bad in [
        "01", "1.", ".5", "nan", "inf", "[1,]", "{'a': 1}", "\"a\tb\"", "True", "", "1 2",
    ] {
        assert_eq!(loads(bad), None, "{bad}");
    }
    assert_eq!(loads("\"\\ud83d\\ude00\""), Some(PyValue::str("😀")));
    assert_eq!(
        loads(r#"{"b": 1, "a": 2, "b": 3}"#),
        Some(PyValue::Dict(vec![
            ("b".into(), PyValue::int(3)),
            ("a".into(), PyValue::int(2))
        ]))
    );
    let deep = "[".repeat(100_000);
    assert_eq!(
        loads(&deep),
        None,
        "deep nesting is refused, not a stack overflow"
    );
}

#[test]
fn str_and_repr_follow_python() {
    let v = |text: &str| str(&decode(text));
    assert_eq!(v("1e-5"), "1e-05");
    assert_eq!(v("3e-6"), "3e-06");
    assert_eq!(v("1e16"), "1e+16");
    assert_eq!(v("0.1"), "0.1");
    assert_eq!(v("true"), "True");
    assert_eq!(v("null"), "None");
    assert_eq!(v("[\"it's\", \"plain\"]"), "[\"it's\", 'plain']");
    assert_eq!(v("[\"say \\\"hi\\\" it's\"]"), "['say \"hi\" it\\'s']");
    assert_eq!(
        v("{\"b\": {\"x\": 1}, \"a\": [1.0, null]}"),
        "{'b': {'x': 1}, 'a': [1.0, None]}"
    );
    assert_eq!(
        v("[\"tab\\there\", \"\\u00e9\", \"\\u00a0\", \"\\u200b\"]"),
        "['tab\\there', 'é', '\\xa0', '\\u200b']"
    );
    assert_eq!(v("[NaN, Infinity]"), "[nan, inf]");
    assert_eq!(v("not json"), "not json");
}

#[test]
fn dumps_default_follows_pythons_defaults() {
    let d = |text: &str| dumps_default(&decode(text));
    assert_eq!(
        d("{\"b\": 1e-5, \"a\": [1, 2.5]}"),
        "{\"b\": 1e-05, \"a\": [1, 2.5]}"
    );
    assert_eq!(d("\"adam\""), "\"adam\"");
    assert_eq!(d("[NaN, true, null]"), "[NaN, true, null]");
}

#[test]
fn dumps_follows_python() {
    let d = |text: &str| dumps(&decode(text));
    assert_eq!(
        d("{\"b\": 1e-5, \"a\": [1, 2.5]}"),
        "{\"a\":[1,2.5],\"b\":1e-05}"
    );
    assert_eq!(
        d("\"h\\u00e9llo \\ud83d\\ude00\""),
        "\"h\\u00e9llo \\ud83d\\ude00\""
    );
    assert_eq!(d("[NaN, -Infinity, 1e400]"), "[NaN,-Infinity,Infinity]");
    assert_eq!(d("1180591620717411303424"), "1180591620717411303424");
    assert_eq!(d("\"a\\u0001b\""), "\"a\\u0001b\"");
}
