//! The builtin trainer on one frame: preparation, models and scores.
use super::*;

#[test]
fn folds_partition_the_rows_and_depend_on_the_seed() {
    let parts = splits(11, Split::Folds(3), 7).unwrap();
    let mut seen: Vec<usize> = parts.iter().flat_map(|(_, test)| test.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..11).collect::<Vec<_>>());
    assert_eq!(
        parts.iter().map(|(_, t)| t.len()).collect::<Vec<_>>(),
        [4, 4, 3]
    );
    for (train, test) in &parts {
        assert_eq!(train.len() + test.len(), 11);
        assert!(train.iter().all(|i| !test.contains(i)));
    }
    assert_eq!(splits(11, Split::Folds(3), 7).unwrap(), parts);
    assert_ne!(splits(11, Split::Folds(3), 8).unwrap(), parts);
    let holdout = splits(10, Split::Holdout(0.25), 1).unwrap();
    assert_eq!(holdout[0].1.len(), 3);
}

#[test]
fn hyperparameters_override_the_task_and_are_checked() {
    let spec: BuiltinSpec =
        toml::from_str("kind = \"single-frame\"\nlabel = \"y\"\nfolds = 3\n").unwrap();
    let hps = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let params = Params::resolve(&spec, &hps(&[])).unwrap();
    assert_eq!(params.split, Split::Folds(3));
    assert_eq!(params.c, 1.0);
    let params = Params::resolve(
        &spec,
        &hps(&[("test_size", "0.2"), ("C", "0.5"), ("seed", "9")]),
    )
    .unwrap();
    assert_eq!(params.split, Split::Holdout(0.2));
    assert_eq!((params.c, params.seed), (0.5, 9));
    assert_eq!(
        Params::resolve(&spec, &hps(&[("l2", "4")])).unwrap().c,
        0.25
    );
    for (bad, message) in [
        (vec![("max_iters", "5")], "`max_iters` is not a parameter"),
        (vec![("C", "abc")], "`C` = `abc` is not a finite number"),
        (vec![("C", "1"), ("l2", "1")], "not both"),
        (vec![("folds", "1")], "at least 2"),
        (vec![("test_size", "1.5")], "between 0 and 1"),
    ] {
        let err = Params::resolve(&spec, &hps(&bad)).unwrap_err().to_string();
        assert!(err.contains(message), "{err}");
    }
}

#[test]
fn labels_encode_two_classes_and_refuse_others() {
    let (y, classes) = encode_label(
        "s",
        &ColumnData::categories(&[Some("yes"), Some("no")]),
        ModelKind::LogisticRegression,
    )
    .unwrap();
    assert_eq!(y, [1.0, 0.0]);
    assert_eq!(classes.unwrap(), ["no".to_string(), "yes".to_string()]);
    let three = ColumnData::Numeric(vec![0.0, 1.0, 2.0]);
    let err = encode_label("s", &three, ModelKind::LogisticRegression)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 distinct value(s) (0, 1, 2)") && err.contains("linear-regression"),
        "{err}"
    );
    let missing = ColumnData::Numeric(vec![0.0, f64::NAN]);
    assert!(encode_label("s", &missing, ModelKind::LogisticRegression)
        .unwrap_err()
        .to_string()
        .contains("missing in 1 of 2"));
}
