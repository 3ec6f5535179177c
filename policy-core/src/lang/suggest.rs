//! "Did you mean ...?" for misspelt names: fields, predicates, list and map
//! names, actions, keywords, and the daemon's options and commands.

/// The candidate closest to `word`, if one is close enough to be a likely
/// misspelling: none for words of one or two characters (only a case
/// difference), at most one edit up to four characters, two up to eight,
/// three beyond (an edit being an inserted, deleted or replaced
/// character, or two neighbours swapped), compared ignoring ASCII case (so
/// `Sender` suggests `sender`). Of equally close candidates, the first wins.
/// `word` itself is not suggested.
///
/// ```
/// use policy_core::lang::did_you_mean;
///
/// let fields = ["client_address", "client_name", "sender"];
/// assert_eq!(did_you_mean("client_adress", fields), Some("client_address"));
/// assert_eq!(did_you_mean("DUNO", ["OK", "DUNNO", "REJECT"]), Some("DUNNO"));
/// assert_eq!(did_you_mean("helo_is_random", ["helo_is_fqdn", "helo_is_ip"]), None);
/// ```
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    // Longer words are no one's typo and would cost time quadratic in their length.
    const LONGEST: usize = 64;
    if word.is_empty() || word.len() > LONGEST {
        return None;
    }
    // A word of one or two characters is one edit away from too many others
    // (`-c` from `-h`): only a difference of case is suggested.
    let budget = match word.chars().count() {
        0..=2 => 0,
        3..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate.len() > LONGEST || candidate == word {
            continue;
        }
        let distance = edit_distance(word, candidate);
        if distance <= budget && best.map_or(true, |(closest, _)| distance < closest) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `; did you mean `X`?` for [`did_you_mean`]'s answer, or nothing: to be
/// appended to an error message.
pub(crate) fn hint<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    did_you_mean(word, candidates).map_or_else(String::new, |c| format!("; did you mean `{c}`?"))
}

/// The optimal string alignment distance between `a` and `b`, ignoring ASCII
/// case: insertions, deletions, substitutions and transpositions of
/// neighbours, each costing one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Three rows of the dynamic programme: two back, one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let rows = [
            ("", "", 0),
            ("a", "", 1),
            ("", "abc", 3),
            ("kitten", "sitting", 3),
            ("chek", "check", 1),
            ("DUNO", "dunno", 1),
            ("recieve", "receive", 1),
            ("ab", "ba", 1),
            ("abc", "ca", 3),
            ("client_adress", "client_address", 1),
        ];
        for (a, b, d) in rows {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
            assert_eq!(edit_distance(b, a), d, "{b} {a}");
        }
    }

    #[test]
    fn suggestions() {
        let words = [
            "client_address",
            "client_name",
            "trusted_nets",
            "DUNNO",
            "--config",
            "check",
            "test",
            "state",
        ];
        let rows = [
            ("client_adress", Some("client_address")),
            ("trusted_net", Some("trusted_nets")),
            ("DUNO", Some("DUNNO")),
            ("dunno", Some("DUNNO")),
            ("DUNNO", None),
            ("--confg", Some("--config")),
            ("chek", Some("check")),
            ("tset", Some("test")),
            ("xyz", None),
            ("helo_is_random", None),
            ("", None),
        ];
        for (word, expected) in rows {
            assert_eq!(did_you_mean(word, words), expected, "{word}");
        }
        assert_eq!(hint("chek", words), "; did you mean `check`?");
        assert_eq!(hint("zzzz", words), "");
        assert_eq!(did_you_mean("-c", ["-h", "-V", "--config"]), None);
        assert_eq!(did_you_mean("-v", ["-h", "-V"]), Some("-V"));
        // Of two as close, the first.
        assert_eq!(did_you_mean("tast", ["test", "tart"]), Some("test"));
        let long = "x".repeat(1000);
        assert_eq!(did_you_mean(&long, [long.as_str()]), None);
    }
}
