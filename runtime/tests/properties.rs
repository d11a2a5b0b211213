//! Property tests of the parsers that take user input: no input makes them panic, and what
//! they accept follows their rule. A bounded number of cases, so they run in CI.

use husk::container::parse_signal;
use husk::rootfs::mounts::parse_options;
use husk::state::validate_id;
use proptest::prelude::*;
use serde_json::Value;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
        Just(Value::String("SCMP_ACT_ALLOW".into())),
        Just(Value::String("/proc".into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every pointer to a value in `v`, containers included.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| pointers(c, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn config_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = husk::spec::parse(&bytes);
    }

    #[test]
    fn any_json_config_never_panics(v in arb_json()) {
        let _ = husk::spec::parse(v.to_string().as_bytes());
    }

    /// The default config with one field, anywhere in it, replaced by anything.
    #[test]
    fn a_mutated_default_config_never_panics(pick in any::<prop::sample::Index>(), v in arb_json()) {
        let mut config = husk::spec::default_spec(false);
        let mut all = Vec::new();
        pointers(&config, String::new(), &mut all);
        let ptr = all[pick.index(all.len())].clone();
        if ptr.is_empty() {
            config = v;
        } else if let Some(slot) = config.pointer_mut(&ptr) {
            *slot = v;
        }
        let _ = husk::spec::parse(config.to_string().as_bytes());
    }

    #[test]
    fn mount_options_never_panic(opts in prop::collection::vec("[a-z_=,.0-9+-]{0,14}", 0..8)) {
        let o = parse_options(&opts);
        // Whatever the kernel gets as data was given as an option.
        for d in &o.data {
            prop_assert!(opts.contains(d), "{d:?} not among {opts:?}");
        }
    }

    #[test]
    fn signals_parse_to_numbers_in_range(s in "\\PC{0,12}") {
        if let Ok(Some(n)) = parse_signal(&s) {
            prop_assert!((1..=64).contains(&n), "{s:?} gave {n}");
        }
    }

    #[test]
    fn every_signal_number_and_rt_name_is_taken(n in 1..=64i32, off in 0..=30i32) {
        prop_assert_eq!(parse_signal(&n.to_string()).unwrap(), Some(n));
        prop_assert_eq!(parse_signal(&format!("SIGRTMIN+{off}")).unwrap(), Some(34 + off));
        prop_assert_eq!(parse_signal(&format!("rtmax-{off}")).unwrap(), Some(64 - off));
    }

    /// An id is a state directory name: it must never name a path outside the root.
    #[test]
    fn accepted_ids_are_plain_names(s in "[a-zA-Z0-9_+.\\-/ \\x00]{0,12}|\\PC{0,8}") {
        if validate_id(&s).is_ok() {
            prop_assert!(!s.is_empty() && s != "." && s != "..");
            prop_assert!(!s.contains('/') && !s.contains('\0'));
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b)));
        }
    }
}
