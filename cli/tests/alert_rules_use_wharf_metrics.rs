//! The Prometheus alert rules shipped in `docs/alerts/wharf.rules.yml` name only series
//! wharf records and only verdicts the status monitor gives, so a renamed metric cannot
//! leave a rule that never fires. (`scripts/test.sh` also runs `promtool check rules` on
//! the file when promtool is installed.)

use wharf::status::Verdict;

fn rules() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/alerts/wharf.rules.yml"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The `wharf_…` names in the rules' expressions.
fn series(rules: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        let mut rest = line;
        while let Some(at) = rest.find("wharf_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            found.push(name);
        }
    }
    found
}

#[test]
fn every_series_in_the_rules_is_one_wharf_records() {
    let rules = rules();
    let series = series(&rules);
    assert!(series.len() >= 7, "{series:?}");
    for name in &series {
        assert!(
            wharf::metric_names::ALL.contains(&name.as_str()),
            "the rules use `{name}`, which wharf does not record"
        );
    }
}

#[test]
fn every_verdict_in_the_rules_is_one_the_monitor_gives() {
    let rules = rules();
    let mut checked = 0;
    for part in rules.split("verdict=\"").skip(1) {
        let verdict = part.split('"').next().unwrap_or_default();
        assert!(
            Verdict::ALL.iter().any(|v| v.as_str() == verdict),
            "the rules use verdict `{verdict}`"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 4,
        "stopped, stalled, failing and slow have an alert each"
    );
}
