use crate::action::EnhancedStatus;
use crate::request::KNOWN_ATTRIBUTES;

use crate::template::Var;

#[test]
fn variable_names() {
    for (index, name) in KNOWN_ATTRIBUTES.iter().enumerate() {
        let var = Var::ALL[index];
        assert_eq!(var.name(), *name);
        assert_eq!(var.attribute_index(), Some(index));
        assert_eq!(Var::from_attribute_index(index), Some(var));
    }
    for var in Var::ALL {
        assert_eq!(Var::lookup(var.name()), Some(var), "{var}");
        assert!(!var.sample().is_empty());
        assert!(!var.sample().contains(' '), "{var}");
        assert!(EnhancedStatus::parse(var.sample()).is_err(), "{var}");
    }
    assert_eq!(Var::from_attribute_index(KNOWN_ATTRIBUTES.len()), None);
    assert_eq!(Var::SenderLocal.attribute_index(), None);
    assert_eq!(Var::Rule.name(), "rule");
    assert_eq!(Var::RecipientDomain.name(), "recipient_domain");
    for name in ["Sender", "", "x_extra", "sender ", "rule_name"] {
        assert_eq!(Var::lookup(name), None, "{name:?}");
    }
}
