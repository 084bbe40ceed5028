//! BIMA's checks of what the bank sends, field by field, on the raw JSON (not
//! on polis's types, so a drift of our serializer from the seed's shape shows).

use serde_json::Value;

/// One refused field: where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub field: String,
    pub message: String,
}

#[derive(Default)]
struct Checks(Vec<Refusal>);

impl Checks {
    fn fail(&mut self, field: &str, message: &str) {
        self.0.push(Refusal { field: field.to_owned(), message: message.to_owned() });
    }

    /// The string at `field` of `object`, refusing a missing or empty one.
    fn text<'a>(&mut self, object: &'a Value, path: &str, field: &str) -> Option<&'a str> {
        match object.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                self.fail(&join(path, field), "required");
                None
            }
            Some(_) => {
                self.fail(&join(path, field), "must be a string");
                None
            }
        }
    }

    fn digits(&mut self, object: &Value, path: &str, field: &str, len: Option<usize>) -> Option<u64> {
        let s = self.text(object, path, field)?;
        let ok = s.bytes().all(|b| b.is_ascii_digit()) && len.is_none_or(|n| s.len() == n);
        if !ok {
            let message = match len {
                Some(n) => format!("must be {n} digits"),
                None => "must be digits".to_owned(),
            };
            self.fail(&join(path, field), &message);
            return None;
        }
        s.parse().ok()
    }

    fn date(&mut self, object: &Value, path: &str, field: &str) -> Option<String> {
        let s = self.text(object, path, field)?;
        if is_date(s) {
            Some(s.to_owned())
        } else {
            self.fail(&join(path, field), "must be a date YYYY-MM-DD");
            None
        }
    }

    fn one_of(&mut self, object: &Value, path: &str, field: &str, allowed: &[&str]) {
        if let Some(s) = self.text(object, path, field) {
            if !allowed.contains(&s) {
                self.fail(&join(path, field), &format!("must be one of {allowed:?}"));
            }
        }
    }

    fn list<'a>(&mut self, object: &'a Value, path: &str, field: &str) -> &'a [Value] {
        match object.get(field) {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => {
                self.fail(&join(path, field), "must be a non-empty list");
                &[]
            }
        }
    }

    fn sync_id(&mut self, object: &Value, path: &str, field: &str) {
        match object.get(field) {
            Some(inner @ Value::Object(_)) => {
                self.text(inner, &join(path, field), "sync_id");
            }
            _ => self.fail(&join(path, field), "must be an object with sync_id"),
        }
    }

    fn done(self) -> Result<(), Vec<Refusal>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    matches!((num(0..4), num(5..7), num(8..10)), (Some(y), Some(m), Some(d)) if y >= 1900 && (1..=12).contains(&m) && (1..=31).contains(&d))
}

/// A valid `POST /api/v1/premium/calc`: the loan's sum and months.
pub struct CalcInput {
    pub sum: u64,
    pub months: u64,
}

pub fn calc(body: &Value) -> Result<CalcInput, Vec<Refusal>> {
    let mut c = Checks::default();
    c.text(body, "", "program");
    let sum = c.digits(body, "", "CREDIT_SUM", None);
    let months = c.digits(body, "", "CREDIT_PERIODS", None);
    c.date(body, "", "birth_date");
    if sum == Some(0) {
        c.fail("CREDIT_SUM", "must be positive");
    }
    if months.is_some_and(|m| !(1..=360).contains(&m)) {
        c.fail("CREDIT_PERIODS", "must be 1 to 360 months");
    }
    c.done()?;
    Ok(CalcInput { sum: sum.unwrap_or_default(), months: months.unwrap_or_default() })
}

/// A valid sale: its credit number and sum (the scenario key).
pub struct SaleInput {
    pub credit_number: String,
    pub credit_sum: String,
}

pub fn sale(body: &Value) -> Result<SaleInput, Vec<Refusal>> {
    let mut c = Checks::default();
    c.one_of(body, "", "status_payment", &["PAID", "NOT_PAID"]);
    let Some(form) = body.get("json_forma_prodazhi").filter(|f| f.is_object()) else {
        c.fail("json_forma_prodazhi", "required");
        return Err(c.0);
    };
    let mut app = std::collections::HashMap::new();
    match form.get("policy") {
        Some(policy @ Value::Object(_)) => {
            let at = "json_forma_prodazhi.policy";
            c.date(policy, at, "start_date");
            for catalogue in ["product", "program"] {
                let inner = policy.get(catalogue).cloned().unwrap_or_default();
                let inner_at = join(at, catalogue);
                for field in ["sync_id", "code", "name"] {
                    c.text(&inner, &inner_at, field);
                }
            }
            c.sync_id(policy, at, "specialist_id");
            for (i, entry) in c.list(policy, at, "app_dict").iter().enumerate() {
                let entry_at = format!("{at}.app_dict[{i}]");
                if let (Some(k), Some(v)) =
                    (c.text(entry, &entry_at, "app"), c.text(entry, &entry_at, "value"))
                {
                    app.insert(k.to_owned(), v.to_owned());
                }
            }
            for required in ["CREDIT_NUMBER", "CREDIT_SUM", "CREDIT_PERIODS"] {
                if !app.contains_key(required) {
                    c.fail(&format!("{at}.app_dict"), &format!("{required} is required"));
                }
            }
        }
        _ => c.fail("json_forma_prodazhi.policy", "required"),
    }
    for (i, person) in c.list(form, "json_forma_prodazhi", "third_party").iter().enumerate() {
        let at = format!("json_forma_prodazhi.third_party[{i}]");
        for field in ["last_name", "first_name"] {
            c.text(person, &at, field);
        }
        c.date(person, &at, "birth_date");
        c.one_of(person, &at, "gender", &["0", "1"]);
        c.digits(person, &at, "tin", Some(9));
        c.one_of(person, &at, "sign_legal", &["0", "1"]);
        c.one_of(person, &at, "sign_person", &["0", "1"]);
        for (j, r) in c.list(person, &at, "tp_resident").iter().enumerate() {
            let r_at = format!("{at}.tp_resident[{j}]");
            c.one_of(r, &r_at, "sign", &["0", "1"]);
            c.digits(r, &r_at, "country", None);
        }
        for (j, doc) in c.list(person, &at, "tp_identity").iter().enumerate() {
            let d_at = format!("{at}.tp_identity[{j}]");
            c.sync_id(doc, &d_at, "doc_type");
            c.text(doc, &d_at, "doc_number");
            c.text(doc, &d_at, "issue_institution");
            c.date(doc, &d_at, "issue_date");
        }
        for (j, phone) in c.list(person, &at, "phone_numbers").iter().enumerate() {
            let p_at = format!("{at}.phone_numbers[{j}]");
            c.one_of(phone, &p_at, "type", &["0", "1"]);
            c.digits(phone, &p_at, "country", None);
            c.digits(phone, &p_at, "phone_number", Some(9));
        }
        if let Some(Value::Array(emails)) = person.get("emails") {
            for (j, e) in emails.iter().enumerate() {
                let e_at = format!("{at}.emails[{j}]");
                if c.text(e, &e_at, "email").is_some_and(|s| !s.contains('@')) {
                    c.fail(&join(&e_at, "email"), "must be an e-mail address");
                }
            }
        }
        for (j, a) in c.list(person, &at, "postal_address").iter().enumerate() {
            let a_at = format!("{at}.postal_address[{j}]");
            c.one_of(a, &a_at, "address_type", &["0", "1"]);
            c.digits(a, &a_at, "country", None);
            for field in ["town", "street", "street_nr"] {
                c.text(a, &a_at, field);
            }
        }
    }
    c.done()?;
    Ok(SaleInput {
        credit_number: app.remove("CREDIT_NUMBER").unwrap_or_default(),
        credit_sum: app.remove("CREDIT_SUM").unwrap_or_default(),
    })
}

/// A valid `POST /api/v1/policies/print/link`: the policy and at least one contact.
pub fn print_link(body: &Value) -> Result<String, Vec<Refusal>> {
    let mut c = Checks::default();
    let policy_id = c.text(body, "", "policy_id").map(str::to_owned);
    let email = body.get("email").and_then(Value::as_str);
    let phone = body.get("phone").and_then(Value::as_str);
    if email.is_none() && phone.is_none() {
        c.fail("email", "an e-mail or a phone is required to deliver the link");
    }
    if email.is_some_and(|e| !e.contains('@')) {
        c.fail("email", "must be an e-mail address");
    }
    if phone.is_some() {
        c.digits(body, "", "phone", Some(9));
    }
    c.done()?;
    Ok(policy_id.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calc_names_every_bad_field() {
        let bad =
            json!({"program": "", "CREDIT_SUM": "5e5", "CREDIT_PERIODS": "0", "birth_date": "1990-13-01"});
        let fields: Vec<String> = calc(&bad).err().unwrap().into_iter().map(|r| r.field).collect();
        assert_eq!(fields, ["program", "CREDIT_SUM", "birth_date", "CREDIT_PERIODS"]);
        let good = json!({"program": "P", "CREDIT_SUM": "500000", "CREDIT_PERIODS": "12", "birth_date": "1990-01-01"});
        assert_eq!(calc(&good).map(|c| (c.sum, c.months)).ok(), Some((500000, 12)));
    }

    #[test]
    fn print_link_needs_a_contact_and_a_nine_digit_phone() {
        assert!(print_link(&json!({"policy_id": "1"})).is_err());
        assert!(print_link(&json!({"policy_id": "1", "phone": "+992935550011"})).is_err());
        assert_eq!(print_link(&json!({"policy_id": "1", "phone": "935550011"})).ok(), Some("1".into()));
    }
}
